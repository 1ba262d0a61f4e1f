"""`julia trace MESSAGE_ID`: the path of one message, from what SQL kept —
webhook queued (pgmq), stored (interacao), reply job, model calls, outbox
rows claimed and sent (number, instance), delivery statuses.

One SQL function decides the steps (`message_trace`, db/trace.sql);
this module prints them as a table in America/Sao_Paulo time, or as JSON.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

import psycopg

from app.core.config import SAO_PAULO
from app.core.errors import NotFound
from app.ops.preflight import CommandError, command_settings, connect
from app.store.errors import wrap_db_errors
from app.store.queries import queries

# step -> label for operators (pt-BR / English). Steps not listed print as they are.
LABELS: dict[str, str] = {
    "webhook_queued": "webhook recebido e enfileirado / webhook queued",
    "webhook_duplicate": "webhook repetido (ignorado) / duplicate delivery",
    "inbound_poison": "mensagem com erro (poison) / set aside as poison",
    "interacao_stored": "mensagem gravada / stored (interacao)",
    "reply_job_deferred": "resposta agendada / reply job deferred",
    "reply_job_scheduled": "resposta marcada para / reply job scheduled",
    "reply_job_started": "resposta em andamento / reply job started",
    "reply_job_deferred_for_retry": "resposta: nova tentativa / reply job will retry",
    "reply_job_succeeded": "resposta concluída / reply job finished",
    "reply_job_failed": "resposta falhou / reply job failed",
    "llm_call": "chamada ao modelo / LLM call",
    "outbox_queued": "resposta na fila de envio / outbox row queued",
    "send_job_deferred": "envio agendado / send job deferred",
    "send_job_scheduled": "envio marcado para / send job scheduled",
    "send_job_started": "envio em andamento / send job started",
    "send_job_deferred_for_retry": "envio: nova tentativa / send job will retry",
    "send_job_succeeded": "envio concluído / send job finished",
    "send_job_failed": "envio falhou / send job failed",
    "outbox_claimed": "liberado para envio / claimed by the send gate",
    "outbox_sent": "enviado ao WhatsApp / sent",
    "outbox_deferred": "retido pelo portão de envio / held by the send gate",
    "outbox_failed": "não será enviado / failed",
    "delivery_status": "status de entrega / delivery status",
}

# The detail keys worth a column, in this order.
DETAIL_KEYS = (
    "msg_id",
    "interacao_id",
    "conversation_id",
    "answered_with",
    "job_id",
    "model",
    "outcome",
    "input_tokens",
    "output_tokens",
    "ms",
    "outbox_id",
    "number",
    "instance",
    "evolution_message_id",
    "refusal",
    "not_before",
    "status",
    "error",
)


def read_trace(conn: psycopg.Connection, message_id: str) -> list[dict[str, Any]]:
    """The steps of one message, oldest first; NotFound for an unknown id."""
    with wrap_db_errors():
        return conn.execute(queries["message_trace"], {"id": message_id}).fetchall()


def _detail(detail: dict[str, Any]) -> str:
    return " ".join(f"{k}={detail[k]}" for k in DETAIL_KEYS if detail.get(k) not in (None, ""))


def format_table(message_id: str, steps: list[dict[str, Any]]) -> str:
    """A readable table: local time (Sao Paulo), seconds since the first step, step, detail."""
    first: datetime = steps[0]["at"]
    rows = [
        (
            s["at"].astimezone(SAO_PAULO).strftime("%d/%m %H:%M:%S.%f")[:-3],
            f"+{(s['at'] - first).total_seconds():.3f}s",
            LABELS.get(s["step"], s["step"]),
            _detail(s["detail"]),
        )
        for s in steps
    ]
    header = ("hora (São Paulo)", "Δ", "etapa / step", "detalhe / detail")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = [f"mensagem / message {message_id}: {len(steps)} etapas / steps", ""]
    for r in [header, *rows]:
        lines.append("  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])
    return "\n".join(line.rstrip() for line in lines)


def as_json(message_id: str, steps: list[dict[str, Any]]) -> str:
    return json.dumps(
        {
            "message_id": message_id,
            "steps": [
                {"at": s["at"].isoformat(), "step": s["step"], "label": LABELS.get(s["step"]), "detail": s["detail"]}
                for s in steps
            ],
        },
        ensure_ascii=False,
        indent=2,
        default=str,
    )


def cmd_trace(args: argparse.Namespace) -> None:
    """Print the trace; an unknown id is a one-line error (exit 1), like every CLI failure (app.ops.cli)."""
    with connect(command_settings("cli")) as conn:
        try:
            steps = read_trace(conn, args.message_id)
        except NotFound:
            raise CommandError(
                f"mensagem desconhecida / unknown message: {args.message_id} "
                "(give an interacao id or an Evolution message id)"
            ) from None
    print(as_json(args.message_id, steps) if args.json else format_table(args.message_id, steps))


def register(sub: Any) -> None:
    """Add `julia trace` to the CLI's sub-commands."""
    p = sub.add_parser("trace", help="the path of one message (webhook, queue, reply, LLM, outbox, send, delivery)")
    p.add_argument("message_id", metavar="MESSAGE_ID", help="the Evolution message id or the interacao id")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_trace)

"""`julia campaign ...`: create, preview, start, pause and follow campaigns.

Every decision is an SQL function (db/campaigns.sql); this module parses
arguments and prints results.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.core.config import SAO_PAULO, Settings, load_settings
from app.core.errors import Conflict, InvalidInput, JuliaError, NotFound
from app.store.errors import wrap_db_errors
from app.store.queries import queries


class CampaignError(JuliaError):
    """A campaign command failed; the message says why."""


def _connect(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(settings.database_url, autocommit=True, row_factory=dict_row, connect_timeout=10)


def _campaign_id(conn: psycopg.Connection, ref: str) -> int:
    row = conn.execute(queries["campaign_by_name"], {"ref": ref}).fetchone()
    if row is None:
        raise CampaignError(f"campaign {ref!r} not found")
    return row["id"]


def _run(args: argparse.Namespace, action: Any) -> None:
    settings = load_settings("cli")
    try:
        with _connect(settings) as conn, wrap_db_errors():
            result = action(conn, settings)
    except (InvalidInput, NotFound, Conflict) as exc:
        raise CampaignError(str(exc)) from None
    except psycopg.errors.UniqueViolation:
        raise CampaignError("a campaign with that name already exists") from None
    print(json.dumps(result, ensure_ascii=False, indent=2, default=str))


def _preview(conn: psycopg.Connection, campaign_id: int) -> dict[str, Any]:
    return conn.execute(queries["preview_campaign"], {"id": campaign_id}).fetchone()["preview"]


def why_none_now(preview: dict[str, Any], *, julia_paused: bool) -> str:
    """Why a started campaign sent nothing at once (pt-BR, times in São Paulo)."""
    if julia_paused:
        return "Julia está pausada: nada sai até `julia resume`"
    if not preview.get("em_horario"):
        opening = preview.get("proxima_abertura")
        when = _local(opening) if opening else "no próximo dia permitido"
        return f"fora do horário de envio; a próxima janela abre {when}"
    if not preview.get("limite_dia_restante"):
        return "o limite do dia já foi atingido; continua amanhã"
    if not preview.get("limite_hora_restante"):
        return "o limite desta hora já foi atingido; continua na próxima hora"
    if not any(n.get("disponivel") for n in preview.get("numeros") or [{"disponivel": True}]):
        return "nenhum número de WhatsApp disponível (`julia numbers list`)"
    return "os envios saem a cada minuto pelo agendador (`julia campaign status` acompanha)"


def _local(value: str) -> str:
    moment = datetime.fromisoformat(str(value)).astimezone(SAO_PAULO)
    return moment.strftime("%d/%m às %H:%M (horário de São Paulo)")


def _filtro(args: argparse.Namespace) -> dict[str, Any]:
    filtro: dict[str, Any] = {}
    if args.especialidade:
        filtro["especialidades"] = args.especialidade
    if args.regiao:
        filtro["regioes"] = args.regiao
    if args.tag:
        filtro["tags"] = args.tag
    if args.sem_contato_dias is not None:
        filtro["sem_contato_ha_dias"] = args.sem_contato_dias
    return filtro


def cmd_create(args: argparse.Namespace) -> None:
    def action(conn: psycopg.Connection, settings: Settings) -> dict[str, Any]:
        params = {
            "nome": args.nome,
            "template": args.template,
            "filtro": Jsonb(_filtro(args)),
            "inicio": args.inicio,
            "fim": args.fim,
        }
        campaign_id = conn.execute(queries["create_campaign"], params).fetchone()["id"]
        audience = _preview(conn, campaign_id)["audiencia"]
        created = {"id": campaign_id, "nome": args.nome, "status": "rascunho", "audiencia": audience}
        if audience == 0:
            created["aviso"] = "nenhum médico corresponde a este público: confira especialidade, região e tags"
        return created

    _run(args, action)


def cmd_preview(args: argparse.Namespace) -> None:
    def action(conn: psycopg.Connection, settings: Settings) -> dict[str, Any]:
        return _preview(conn, _campaign_id(conn, args.campaign))

    _run(args, action)


def cmd_start(args: argparse.Namespace) -> None:
    def action(conn: psycopg.Connection, settings: Settings) -> dict[str, Any]:
        campaign_id = _campaign_id(conn, args.campaign)
        queued = conn.execute(queries["start_campaign"], {"id": campaign_id}).fetchone()["queued"]
        # The first wave goes now; the scheduler dispatches the rest minute by minute.
        first = conn.execute(queries["dispatch_outreach"], {"now": None}).fetchall()
        started = {"id": campaign_id, "status": "ativa", "queued": queued, "dispatched_now": len(first)}
        if queued and not first:
            paused = conn.execute(queries["julia_state"]).fetchone()["status"] == "pausado"
            started["why_none_now"] = why_none_now(_preview(conn, campaign_id), julia_paused=paused)
        return started

    _run(args, action)


def cmd_pause(args: argparse.Namespace) -> None:
    def action(conn: psycopg.Connection, settings: Settings) -> dict[str, Any]:
        campaign_id = _campaign_id(conn, args.campaign)
        conn.execute(queries["pause_campaign"], {"id": campaign_id})
        return {"id": campaign_id, "status": "pausada"}

    _run(args, action)


def cmd_status(args: argparse.Namespace) -> None:
    def action(conn: psycopg.Connection, settings: Settings) -> list[dict[str, Any]]:
        campaign_id = _campaign_id(conn, args.campaign) if args.campaign else None
        rows = conn.execute(queries["campaign_metrics"], {"id": campaign_id}).fetchall()
        for row in rows:
            # Where each campaign's messages went, number by number.
            row["por_numero"] = conn.execute(queries["campaign_numbers"], {"id": row["campanha_id"]}).fetchone()[
                "numbers"
            ]
        return rows

    _run(args, action)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `julia campaign ...` to the CLI."""
    campaign = sub.add_parser("campaign", help="outreach campaigns (limits, hours and opt-outs always apply)")
    commands = campaign.add_subparsers(dest="campaign_command", required=True, metavar="CAMPAIGN_COMMAND")

    p = commands.add_parser("create", help="create a campaign (draft)")
    p.add_argument("--nome", required=True)
    p.add_argument(
        "--template", required=True, help="text with {nome} {primeiro_nome} {especialidade} {regiao} {cidade}"
    )
    p.add_argument("--especialidade", action="append", help="audience: specialty or alias (repeatable)")
    p.add_argument("--regiao", action="append", help="audience: region (repeatable)")
    p.add_argument("--tag", action="append", help="audience: doctors with any of these tags (repeatable)")
    p.add_argument("--sem-contato-dias", type=int, help="audience: not touched for N days")
    p.add_argument("--inicio", type=datetime.fromisoformat, help="ISO start time (default: when started)")
    p.add_argument("--fim", type=datetime.fromisoformat, help="ISO end time")
    p.set_defaults(func=cmd_create)

    for name, func, text in (
        ("preview", cmd_preview, "how many would go today under the limits, and a sample message"),
        ("start", cmd_start, "start: queue one message per doctor; they trickle out through the gate"),
        ("pause", cmd_pause, "pause: nothing more goes until started again"),
    ):
        p = commands.add_parser(name, help=text)
        p.add_argument("campaign", help="campaign id or name")
        p.set_defaults(func=func)
    p = commands.add_parser("status", help="metrics of every campaign, or one")
    p.add_argument("campaign", nargs="?")
    p.set_defaults(func=cmd_status)

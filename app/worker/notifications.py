"""Operator notifications recorded in SQL (`notifications`): their Slack text,
the manager's WhatsApp alert for critical ones, and delivering one.
Run by the `send_notification` job; SQL decides what is critical and how
many manager alerts an hour may go out.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg_pool import AsyncConnectionPool

from app.core.config import Settings
from app.core.tokens import handoff_link, mint_handoff_token
from app.integrations.slack import SlackClient
from app.store.pool import fetch_one

logger = logging.getLogger(__name__)


def _who(payload: dict[str, Any]) -> str:
    nome = payload.get("nome") or "médico sem nome"
    telefone = payload.get("telefone")
    return f"{nome} ({telefone})" if telefone else nome


def format_notification(
    kind: str, payload: dict[str, Any], *, chatwoot_link: str | None = None, external_link: str | None = None
) -> str:
    """The Slack text of a notification (Slack mrkdwn)."""
    if kind == "handoff":
        lines = [
            f":raising_hand: *Handoff*: {_who(payload)} precisa de uma pessoa.",
            f"Motivo: {payload.get('motivo') or 'não informado'}",
        ]
    elif kind == "handback":
        via = payload.get("via") or "julia"
        lines = [f":leftwards_arrow_with_hook: Conversa com {_who(payload)} devolvida para a Julia (via {via})."]
    elif kind in ("pause", "resume"):
        verb = "pausada" if kind == "pause" else "retomada"
        icon = ":double_vertical_bar:" if kind == "pause" else ":arrow_forward:"
        lines = [f"{icon} Julia *{verb}* (via {payload.get('via')}): {payload.get('motivo')}"]
    elif kind == "guard_failure":
        lines = [f":rotating_light: *Guarda de ambiente falhou*: {payload.get('detail')}"]
    elif kind == "job_failure":
        lines = [
            f":rotating_light: *Job falhou de vez*: {payload.get('task')} "
            f"(conversa {payload.get('conversation_id')}, {payload.get('classification')})",
            f"Erro: {payload.get('error')}",
        ]
    elif kind == "campaign_finished":
        lines = [
            f":checkered_flag: Campanha *{payload.get('campanha')}* concluída: "
            f"{payload.get('enviadas', 0)} enviadas, {payload.get('respondidas', 0)} respondidas, "
            f"{payload.get('falhas', 0)} falhas."
        ]
    elif kind == "daily_summary":
        details = ", ".join(f"{k}: {v}" for k, v in payload.items() if k != "dia")
        lines = [f":bar_chart: Resumo de {payload.get('dia')}: {details}"]
    else:
        details = ", ".join(f"{k}: {v}" for k, v in payload.items())
        lines = [f"*{kind}*: {details}"]
    if chatwoot_link:
        lines.append(f"Chatwoot: {chatwoot_link}")
    if external_link:
        lines.append(f"Sistema externo: {external_link}")
    return "\n".join(lines)


def manager_alert_text(kind: str, payload: dict[str, Any], app_name: str) -> str:
    """The short WhatsApp text the manager gets for a critical notification."""
    if kind == "guard_failure":
        return f"[{app_name}] ALERTA: a guarda de ambiente falhou; nenhuma mensagem está sendo enviada."
    if kind == "job_failure":
        return f"[{app_name}] ALERTA: o job {payload.get('task')} falhou de vez. Veja o Slack/logs."
    return f"[{app_name}] ALERTA: {kind}."


def _links(settings: Settings, row: dict[str, Any]) -> tuple[str | None, str | None]:
    payload = row["payload"]
    chatwoot = None
    if row["chatwoot_conversation_id"] and settings.chatwoot_url and settings.chatwoot_account_id:
        chatwoot = (
            f"{settings.chatwoot_url}/app/accounts/{settings.chatwoot_account_id}"
            f"/conversations/{row['chatwoot_conversation_id']}"
        )
    external = None
    conversation_id = payload.get("conversation_id")
    if row["kind"] == "handoff" and row["external_handoff"] and conversation_id is not None:
        if settings.external_handoff_url and settings.jwt_secret_key:
            token = mint_handoff_token(settings.jwt_secret_key, int(conversation_id))
            external = handoff_link(settings.external_handoff_url, token)
        else:
            logger.warning(
                "external handoff is on but EXTERNAL_HANDOFF_URL or JWT_SECRET_KEY is not set",
                extra={"action": "external_handoff_unconfigured", "conversation_id": conversation_id},
            )
    return chatwoot, external


async def deliver_notification(
    pool: AsyncConnectionPool, settings: Settings, slack: SlackClient, notification_id: int
) -> str:
    """Send one pending notification: manager alert first (if critical), then Slack.

    Returns sent, skipped (Slack not configured) or the state it was already
    in. Raises SlackError; the notification stays pending for a retry.
    """
    row = await fetch_one(pool, "claim_notification", notification_id=notification_id)
    if not row["known"]:
        return "not_found"
    if row["state"] != "pending":
        return row["state"]
    if row["critical"] and settings.gestor_whatsapp:
        outbox_id = (
            await fetch_one(
                pool,
                "claim_manager_alert",
                notification_id=notification_id,
                number=settings.gestor_whatsapp,
                texto=manager_alert_text(row["kind"], row["payload"], settings.app_name),
            )
        )["outbox_id"]
        logger.warning(
            "manager alert queued" if outbox_id else "manager alert over the hourly limit",
            extra={
                "action": "manager_alert" if outbox_id else "manager_alert_limited",
                "kind": row["kind"],
                "notification_id": notification_id,
                "outbox_id": outbox_id,
            },
        )
    if not slack.configured:
        await fetch_one(pool, "finish_notification", notification_id=notification_id, state="skipped", error=None)
        return "skipped"
    chatwoot, external = _links(settings, row)
    await slack.post(format_notification(row["kind"], row["payload"], chatwoot_link=chatwoot, external_link=external))
    await fetch_one(pool, "finish_notification", notification_id=notification_id, state="sent", error=None)
    return "sent"

"""POST /slack/commands: verify Slack's signature (app.events.slack), refuse a
signature seen before (a replay), run one command. Pause and resume call the
SQL functions with alterado_via='slack'.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

import psycopg
from psycopg.types.json import Jsonb
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.core.config import Settings
from app.core.errors import InvalidInput
from app.events.slack import (
    USAGE,
    Command,
    format_limits,
    format_status,
    parse_command,
    parse_limit_changes,
    signature_valid,
)
from app.http.auth import Refusal, read_body
from app.store.errors import wrap_db_errors
from app.store.queries import queries

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


def slack_reply(text: str, *, in_channel: bool = False) -> JSONResponse:
    """An answer in Slack's slash-command format."""
    return JSONResponse({"response_type": "in_channel" if in_channel else "ephemeral", "text": text})


async def slack_commands(request: Request) -> JSONResponse:
    """POST /slack/commands: verify, refuse replays, run one command."""
    settings: Settings = request.state.settings
    if not settings.slack_signing_secret:
        raise Refusal(401, "SLACK_SIGNING_SECRET is not set: Slack commands are refused")
    raw = await read_body(request, MAX_BODY_BYTES)
    timestamp = request.headers.get("x-slack-request-timestamp")
    signature = request.headers.get("x-slack-signature")
    if not signature_valid(settings.slack_signing_secret, raw, timestamp, signature):
        logger.warning("slack command refused", extra={"action": "slack_command_refused", "reason": "signature"})
        raise Refusal(401, "invalid or expired Slack signature")
    form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8")).items()}
    command = parse_command(form.get("text", ""))
    user = form.get("user_name") or form.get("user_id") or "?"
    allowed = not settings.slack_allowed_users or bool(
        {form.get("user_id"), form.get("user_name")} & set(settings.slack_allowed_users)
    )
    try:
        async with request.state.pool.connection() as conn:
            params = {"signature": signature, "timestamp": int(timestamp)}
            fresh = await (await conn.execute(queries["claim_slack_request"], params)).fetchone()
            if not fresh["fresh"]:
                logger.warning("slack command replayed", extra={"action": "slack_command_refused", "reason": "replay"})
                raise Refusal(401, "replayed Slack request")
            return await _run(conn, settings, command, user, allowed=allowed)
    except psycopg.Error as exc:
        logger.error("slack command failed", extra={"action": "slack_command_failed", "error": str(exc)})
        return slack_reply("Não consegui falar com o banco de dados agora; tente de novo.")


async def _run(
    conn: psycopg.AsyncConnection, settings: Settings, command: Command, user: str, *, allowed: bool
) -> JSONResponse:
    log = {"command": command.name, "user": user}
    if command.name == "status":
        status = (await (await conn.execute(queries["ops_status"])).fetchone())["status"]
        return slack_reply(format_status(status))
    if command.name == "limites" and command.motivo:
        return await _set_limits(conn, command, user, allowed=allowed, log=log)
    if command.name == "limites":
        cur = await conn.execute(queries["rate_limit_status"])
        return slack_reply(format_limits((await cur.fetchone())["status"]))
    if command.name in ("pause", "resume"):
        if not allowed:
            logger.warning(
                "slack command not allowed", extra={"action": "slack_command_refused", "reason": "user", **log}
            )
            return slack_reply("Você não está na lista de quem pode pausar ou retomar a Julia (SLACK_ALLOWED_USERS).")
        if not command.motivo:
            return slack_reply(f"Diga o motivo: `{command.name} <motivo>`.")
        resume = command.name == "resume"
        cur = await conn.execute(
            queries["resume_julia" if resume else "pause_julia"], {"motivo": command.motivo, "via": "slack"}
        )
        if (await cur.fetchone())["id"] is None:
            return slack_reply("A Julia já está " + ("ativa." if resume else "pausada.") + " Nada mudou (`status`).")
        logger.warning(
            "julia resumed" if resume else "julia paused",
            extra={"action": "julia_resumed" if resume else "julia_paused", "via": "slack", **log},
        )
        verb = "retomada" if resume else "pausada"
        return slack_reply(f"Julia {verb} por @{user}: {command.motivo}", in_channel=True)
    return slack_reply(USAGE)


async def _set_limits(
    conn: psycopg.AsyncConnection, command: Command, user: str, *, allowed: bool, log: dict[str, str]
) -> JSONResponse:
    """`limites k=v ... <motivo>`: change the send policy every worker enforces (audited, via slack)."""
    if not allowed:
        logger.warning("slack command not allowed", extra={"action": "slack_command_refused", "reason": "user", **log})
        return slack_reply("Você não está na lista de quem pode mudar os limites (SLACK_ALLOWED_USERS).")
    changes, motivo = parse_limit_changes(command.motivo)
    if not changes or not motivo:
        return slack_reply("Use `limites hour_limit=30 day_limit=80 <motivo>` (chaves como em `julia limits set`).")
    try:
        params = {"changes": Jsonb(changes), "motivo": f"{motivo} (@{user})", "via": "slack"}
        with wrap_db_errors():
            policy = (await (await conn.execute(queries["set_send_policy"], params)).fetchone())["policy"]
    except InvalidInput as exc:
        return slack_reply(f"Limites não alterados: {exc}")
    logger.warning("send policy changed", extra={"action": "send_policy_changed", "via": "slack", **log})
    shown = ", ".join(f"{k}={policy[k]}" for k in changes)
    return slack_reply(f"Limites alterados por @{user}: {shown} ({motivo})", in_channel=True)


ROUTES: list[BaseRoute] = [Route("/slack/commands", slack_commands, methods=["POST"])]

"""POST /webhooks/chatwoot: an agent's message goes to the doctor (through
the outbox, once per Chatwoot message id: its text converted from Markdown,
each attachment as a media send); resolving hands back to Julia.

Signed with CHATWOOT_WEBHOOK_SECRET: `X-Chatwoot-Signature: sha256=<hex>`,
HMAC-SHA256 of "{X-Chatwoot-Timestamp}.{raw body}". Unsigned webhooks are
accepted only in APP_ENV=dev with no secret set.

Chatwoot never retries a webhook, so the event is stored before it is
answered, retrying for CHATWOOT_STORE_RETRY_SECONDS while the database is
unavailable (below Chatwoot's 5 s webhook timeout); past that it answers 503
and app/http/chatwoot_rescue.py keeps it, tells the agent and alerts operators.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.core.config import Settings
from app.core.errors import BadSignature, InvalidEvent
from app.events import storable_json
from app.events.chatwoot import AgentMessage, Ignored, Resolved, parse_event, verify_signature
from app.http.auth import Refusal, read_body, storable_body
from app.http.chatwoot_rescue import ChatwootRescue
from app.store.queries import queries

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
# The database errors worth waiting out: it is down, restarting or out of connections.
UNAVAILABLE = (psycopg.OperationalError, PoolTimeout)


async def chatwoot_webhook(request: Request) -> JSONResponse:
    """POST /webhooks/chatwoot: verify, parse, one SQL call."""
    settings: Settings = request.state.settings
    secret = settings.chatwoot_webhook_secret
    if not secret and not settings.is_dev:
        raise Refusal(401, "CHATWOOT_WEBHOOK_SECRET is not set: unsigned Chatwoot webhooks are refused")
    raw = await read_body(request, MAX_BODY_BYTES)
    if secret:
        try:
            verify_signature(secret, request.headers, raw)
        except BadSignature as exc:
            logger.warning("chatwoot webhook refused", extra={"action": "chatwoot_webhook_refused", "reason": str(exc)})
            raise Refusal(401, str(exc)) from None
    event = _event(raw, settings)
    if isinstance(event, Ignored):
        return JSONResponse({"status": "ignored", "event": event.event, "reason": event.reason})
    pool: AsyncConnectionPool = request.state.pool

    async def store(budget: float) -> dict[str, Any]:
        return await _store(pool, event, budget=budget)

    try:
        row = await store(settings.chatwoot_store_retry_seconds)
    except (psycopg.DataError, psycopg.IntegrityError) as exc:
        # The data is at fault, not the database: a retry would fail the same way.
        reason = (exc.diag.message_primary or type(exc).__name__)[:200]
        logger.warning("chatwoot webhook refused", extra={"action": "chatwoot_webhook_failed", "error": reason})
        raise Refusal(422, f"body cannot be stored: {reason}") from None
    except psycopg.Error as exc:
        logger.error("chatwoot webhook not stored", extra={"action": "chatwoot_webhook_failed", "error": str(exc)})
        # Chatwoot will not send it again: keep it here, tell the agent, alert operators.
        _rescue(request.state.chatwoot_rescue, event, store)
        raise Refusal(503, "database unavailable: the event is kept and retried, the agent is told") from None
    logger.info(
        "chatwoot webhook",
        extra={
            "action": "chatwoot_agent_message" if isinstance(event, AgentMessage) else "chatwoot_resolved",
            "status": row["status"],
            "chatwoot_conversation_id": event.conversation_id,
            "conversation_id": row["conversation_id"],
            "outbox_id": row.get("outbox_id"),
        },
    )
    return JSONResponse({k: v for k, v in row.items() if v is not None})


RESCUE_ATTEMPT_SECONDS = 2.0


def _event(raw: bytes, settings: Settings) -> AgentMessage | Resolved | Ignored:
    """The Chatwoot event of a body (NUL and lone surrogates read as removed); 4xx otherwise."""
    body, unclean = storable_body(raw)
    try:
        return parse_event(
            storable_json.readable(body) if unclean else body,
            account_id=settings.chatwoot_account_id,
            inbox_id=settings.chatwoot_inbox_id,
        )
    except InvalidEvent as exc:
        raise Refusal(400, f"not a Chatwoot event: {exc}") from None


def _rescue(rescue: ChatwootRescue, event: AgentMessage | Resolved, store: Callable[[float], Awaitable[dict]]) -> None:
    """Hand an event the database could not take to the api's rescue loop."""
    agent = isinstance(event, AgentMessage)
    rescue.start(
        chatwoot_conversation_id=event.conversation_id,
        chatwoot_message_id=event.message_id if agent else None,
        content=(event.content or ", ".join(a.file_name or a.mediatype for a in event.attachments)) if agent else "",
        store=lambda: store(RESCUE_ATTEMPT_SECONDS),
        resolved=not agent,
    )


async def _store(pool: AsyncConnectionPool, event: AgentMessage | Resolved, *, budget: float) -> dict[str, Any]:
    """Record the event in one SQL call, retrying for `budget` seconds while
    the database is unavailable; raises the last psycopg error after that."""
    deadline = time.monotonic() + budget
    pause = 0.1
    while True:
        try:
            async with pool.connection(timeout=max(0.2, deadline - time.monotonic())) as conn:
                return await _record(conn, event)
        except UNAVAILABLE as exc:
            if time.monotonic() + pause >= deadline:
                raise psycopg.OperationalError(str(exc)) from exc
            logger.info(
                "chatwoot webhook waits for the database", extra={"action": "chatwoot_webhook_retry", "error": str(exc)}
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)


async def _record(conn: psycopg.AsyncConnection, event: AgentMessage | Resolved) -> dict[str, Any]:
    if isinstance(event, Resolved):
        cur = await conn.execute(
            queries["resolve_chatwoot_conversation"], {"chatwoot_conversation_id": event.conversation_id}
        )
        return await cur.fetchone()
    async with conn.transaction():
        media = [a.to_json() for a in event.attachments]
        cur = await conn.execute(
            queries["record_chatwoot_agent_message"],
            {
                "chatwoot_conversation_id": event.conversation_id,
                "chatwoot_message_id": event.message_id,
                "texto": event.content,
                "media": Jsonb(media) if media else None,
            },
        )
        row = await cur.fetchone()
        if event.refused and row["status"] in ("queued", "empty"):
            note = "Anexo não enviado ao médico: " + "; ".join(event.refused)
            await conn.execute(queries["note_chatwoot"], {"conversation_id": row["conversation_id"], "texto": note})
            if row["status"] == "empty":
                row = {**row, "status": "refused"}
    return row


ROUTES: list[BaseRoute] = [Route("/webhooks/chatwoot", chatwoot_webhook, methods=["POST"])]

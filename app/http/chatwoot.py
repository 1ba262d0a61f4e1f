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
import hashlib
import hmac
import logging
import mimetypes
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.core.config import Settings
from app.events import storable_json
from app.events.whatsapp_format import markdown_to_whatsapp
from app.integrations.chatwoot import MARKER
from app.store.queries import queries

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
SIGNATURE_WINDOW_SECONDS = 300
MESSAGE_TYPES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}
# Chatwoot's attachment file_type -> Evolution's sendMedia mediatype, and
# WhatsApp's size limit for it.
MEDIA_TYPES = {"image": "image", "video": "video", "audio": "audio", "file": "document"}
MEDIA_LIMITS = {
    "image": 5 * 1024 * 1024,
    "video": 16 * 1024 * 1024,
    "audio": 16 * 1024 * 1024,
    "document": 100 * 1024 * 1024,
}
# The database errors worth waiting out: it is down, restarting or out of connections.
UNAVAILABLE = (psycopg.OperationalError, PoolTimeout)


class BadSignature(Exception):
    """The webhook's signature is missing, stale or wrong."""


class InvalidEvent(Exception):
    """The body is not a Chatwoot event we can read."""


@dataclass(frozen=True, kw_only=True)
class Attachment:
    mediatype: str  # image, video, audio, document (Evolution's sendMedia)
    url: str
    mimetype: str | None
    file_name: str | None

    def to_json(self) -> dict[str, Any]:
        return {"mediatype": self.mediatype, "media": self.url, "mimetype": self.mimetype, "file_name": self.file_name}


@dataclass(frozen=True, kw_only=True)
class AgentMessage:
    conversation_id: int
    message_id: int
    content: str
    attachments: tuple[Attachment, ...] = ()
    refused: tuple[str, ...] = ()  # attachments that cannot go to WhatsApp, and why


@dataclass(frozen=True, kw_only=True)
class Resolved:
    conversation_id: int


@dataclass(frozen=True, kw_only=True)
class Ignored:
    event: str
    reason: str


def verify_signature(secret: str, headers: Mapping[str, str], raw: bytes, *, now: float | None = None) -> None:
    """Check Chatwoot's signature in constant time; raise BadSignature with a reason."""
    signature = headers.get("x-chatwoot-signature", "")
    timestamp = headers.get("x-chatwoot-timestamp", "")
    if not signature or not timestamp:
        raise BadSignature("missing X-Chatwoot-Signature or X-Chatwoot-Timestamp")
    if not timestamp.isdecimal():
        raise BadSignature("X-Chatwoot-Timestamp is not a unix time")
    if abs((time.time() if now is None else now) - int(timestamp)) > SIGNATURE_WINDOW_SECONDS:
        raise BadSignature("X-Chatwoot-Timestamp is more than 5 minutes away")
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise BadSignature("X-Chatwoot-Signature does not match")


def _int(value: Any) -> int | None:
    """A positive id that fits a bigint, else None."""
    if isinstance(value, str) and value.isascii() and value.isdecimal():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value < 2**63 else None


def parse_event(body: Any, *, account_id: str = "", inbox_id: str = "") -> AgentMessage | Resolved | Ignored:
    """Read a webhook body; raise InvalidEvent when it is not a Chatwoot event."""
    if not isinstance(body, dict) or not isinstance(body.get("event"), str):
        raise InvalidEvent("no 'event'")
    event = body["event"]
    account = _int((body.get("account") or {}).get("id")) if isinstance(body.get("account"), dict) else None
    if account_id and account is not None and str(account) != account_id:
        return Ignored(event=event, reason="another account")
    if event == "conversation_status_changed":
        conversation_id = _int(body.get("id"))
        if conversation_id is None:
            raise InvalidEvent("conversation_status_changed without a conversation id")
        if body.get("status") != "resolved":
            return Ignored(event=event, reason=f"status {body.get('status')!r}")
        return Resolved(conversation_id=conversation_id)
    if event != "message_created":
        return Ignored(event=event, reason="not handled")
    conversation = body.get("conversation") if isinstance(body.get("conversation"), dict) else {}
    conversation_id, message_id = _int(conversation.get("id")), _int(body.get("id"))
    if conversation_id is None or message_id is None:
        raise InvalidEvent("message_created without message or conversation id")
    inbox = _int((body.get("inbox") or {}).get("id")) if isinstance(body.get("inbox"), dict) else None
    inbox = inbox if inbox is not None else _int(conversation.get("inbox_id"))
    message_type = body.get("message_type")
    message_type = MESSAGE_TYPES.get(message_type, message_type) if isinstance(message_type, int) else message_type
    sender = body.get("sender") if isinstance(body.get("sender"), dict) else {}
    attributes = body.get("content_attributes") if isinstance(body.get("content_attributes"), dict) else {}
    content = body.get("content") if isinstance(body.get("content"), str) else ""
    attachments, refused = _attachments(body.get("attachments"))
    if inbox_id and inbox is not None and str(inbox) != inbox_id:
        reason = "another inbox"
    elif body.get("private"):
        reason = "private note"
    elif message_type != "outgoing":
        reason = f"message_type {message_type!r}"
    elif MARKER in attributes:
        reason = "julia's own mirrored message"
    elif str(sender.get("type", "")).lower() != "user":
        reason = f"sender {sender.get('type')!r} is not an agent"
    elif not content.strip() and not attachments and not refused:
        reason = "no text"
    else:
        return AgentMessage(
            conversation_id=conversation_id,
            message_id=message_id,
            content=markdown_to_whatsapp(content.strip()),
            attachments=attachments,
            refused=refused,
        )
    return Ignored(event=event, reason=reason)


def _attachments(items: Any) -> tuple[tuple[Attachment, ...], tuple[str, ...]]:
    """The attachments WhatsApp can take, and a reason for each it cannot."""
    sendable: list[Attachment] = []
    refused: list[str] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        url = item.get("data_url") if isinstance(item.get("data_url"), str) else ""
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or None
        label = name or f"anexo {item.get('id')}"
        mediatype = MEDIA_TYPES.get(str(item.get("file_type")))
        size = item.get("file_size") if isinstance(item.get("file_size"), int) else None
        if mediatype is None:
            refused.append(f"{label}: tipo {item.get('file_type')!r} não vai para o WhatsApp")
        elif not url.startswith(("http://", "https://")):
            refused.append(f"{label}: sem data_url")
        elif size is not None and size > MEDIA_LIMITS[mediatype]:
            refused.append(
                f"{label}: {size // (1024 * 1024)} MB, o WhatsApp aceita até "
                f"{MEDIA_LIMITS[mediatype] // (1024 * 1024)} MB para {mediatype}"
            )
        else:
            mimetype = mimetypes.guess_type(name or "")[0] if name else None
            sendable.append(Attachment(mediatype=mediatype, url=url, mimetype=mimetype, file_name=name))
    return tuple(sendable), tuple(refused)


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


async def chatwoot_webhook(request: Request) -> JSONResponse:
    """POST /webhooks/chatwoot: verify, parse, one SQL call."""
    settings: Settings = request.state.settings
    secret = settings.chatwoot_webhook_secret
    if not secret and not settings.is_dev:
        return _error(401, "CHATWOOT_WEBHOOK_SECRET is not set: unsigned Chatwoot webhooks are refused")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return _error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if secret:
        try:
            verify_signature(secret, request.headers, raw)
        except BadSignature as exc:
            logger.warning("chatwoot webhook refused", extra={"action": "chatwoot_webhook_refused", "reason": str(exc)})
            return _error(401, str(exc))
    try:
        body, unclean = storable_json.loads(raw)
    except storable_json.NotStorable as exc:
        return _error(422, f"body cannot be stored: {exc}")
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"malformed JSON: {exc}")
    try:
        event = parse_event(
            storable_json.readable(body) if unclean else body,
            account_id=settings.chatwoot_account_id,
            inbox_id=settings.chatwoot_inbox_id,
        )
    except InvalidEvent as exc:
        return _error(400, f"not a Chatwoot event: {exc}")
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
        return _error(422, f"body cannot be stored: {reason}")
    except psycopg.Error as exc:
        logger.error("chatwoot webhook not stored", extra={"action": "chatwoot_webhook_failed", "error": str(exc)})
        # Chatwoot will not send it again: keep it here, tell the agent, alert operators.
        agent = isinstance(event, AgentMessage)
        request.state.chatwoot_rescue.start(
            chatwoot_conversation_id=event.conversation_id,
            chatwoot_message_id=event.message_id if agent else None,
            content=(event.content or ", ".join(a.file_name or a.mediatype for a in event.attachments))
            if agent
            else "",
            store=lambda: store(RESCUE_ATTEMPT_SECONDS),
            resolved=not agent,
        )
        return _error(503, "database unavailable: the event is kept and retried, the agent is told")
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

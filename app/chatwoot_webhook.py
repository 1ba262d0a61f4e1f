"""POST /webhooks/chatwoot: an agent's message goes to the doctor (through
the outbox, once per Chatwoot message id); resolving hands back to Julia.

Signed with CHATWOOT_WEBHOOK_SECRET: `X-Chatwoot-Signature: sha256=<hex>`,
HMAC-SHA256 of "{X-Chatwoot-Timestamp}.{raw body}". Unsigned webhooks are
accepted only in APP_ENV=dev with no secret set.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app import storable_json
from app.config import Settings
from app.integrations.chatwoot import MARKER
from app.queries import queries

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
SIGNATURE_WINDOW_SECONDS = 300
MESSAGE_TYPES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}


class BadSignature(Exception):
    """The webhook's signature is missing, stale or wrong."""


class InvalidEvent(Exception):
    """The body is not a Chatwoot event we can read."""


@dataclass(frozen=True, kw_only=True)
class AgentMessage:
    conversation_id: int
    message_id: int
    content: str


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
    elif not content.strip():
        reason = "no text"
    else:
        return AgentMessage(conversation_id=conversation_id, message_id=message_id, content=content.strip())
    return Ignored(event=event, reason=reason)


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
    try:
        async with request.state.pool.connection() as conn:
            if isinstance(event, AgentMessage):
                cur = await conn.execute(
                    queries["record_chatwoot_agent_message"],
                    {
                        "chatwoot_conversation_id": event.conversation_id,
                        "chatwoot_message_id": event.message_id,
                        "texto": event.content,
                    },
                )
            else:
                cur = await conn.execute(
                    queries["resolve_chatwoot_conversation"], {"chatwoot_conversation_id": event.conversation_id}
                )
            row = await cur.fetchone()
    except (psycopg.DataError, psycopg.IntegrityError) as exc:
        reason = (exc.diag.message_primary or type(exc).__name__)[:200]
        logger.warning("chatwoot webhook refused", extra={"action": "chatwoot_webhook_failed", "error": reason})
        return _error(422, f"body cannot be stored: {reason}")
    except psycopg.Error as exc:
        logger.error("chatwoot webhook not stored", extra={"action": "chatwoot_webhook_failed", "error": str(exc)})
        return _error(503, "database unavailable, retry later")
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


ROUTES: list[BaseRoute] = [Route("/webhooks/chatwoot", chatwoot_webhook, methods=["POST"])]

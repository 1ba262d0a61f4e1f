"""The Evolution webhook: authenticate, read, parse (app.events.evolution),
then one SQL call — a message into the inbound queue, a delivery status or a
number's connection state. Answered 2xx only once it is stored; 4xx when the
body is at fault; 503 only when the database is really unavailable.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg.types.json import Jsonb
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.core.config import Settings
from app.events import storable_json
from app.events.evolution import (
    ConnectionUpdate,
    Ignored,
    InvalidEvent,
    StatusUpdate,
    normalize_event_name,
    parse_event,
)
from app.http.auth import error, read_body, storable_body, webhook_authorized
from app.http.metrics import count_webhooks
from app.store.errors import is_connection_error
from app.store.queries import queries

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024
# A webhook waits this long for a database connection, then answers 503 (Evolution retries):
# answering fast beats holding Evolution's request through an outage.
WEBHOOK_DB_WAIT_SECONDS = 3.0
# A doctor's photo or PDF arrives base64-encoded in the webhook (webhook_base64):
# room for a 16 MB file (app/worker/chatwoot_sync.py MAX_MEDIA_BYTES) and its envelope.
MAX_MEDIA_BODY_BYTES = 24 * 1024 * 1024


def _carries_media(body: object) -> bool:
    """True for a message whose file Evolution sent base64-encoded (webhook_base64)."""
    data = body.get("data") if isinstance(body, dict) else None
    message = data.get("message") if isinstance(data, dict) else None
    return isinstance(message, dict) and isinstance(message.get("base64"), str)


async def evolution_webhook(request: Request) -> JSONResponse:
    """POST /webhooks/evolution[/{event}]: authenticate, parse, enqueue."""
    settings: Settings = request.state.settings
    if (settings.evolution_webhook_secret or not settings.is_dev) and not webhook_authorized(
        request.headers, settings.evolution_webhook_secret
    ):
        return error(401, "missing or invalid webhook credentials")
    raw = await read_body(request, MAX_MEDIA_BODY_BYTES)
    body, unclean = storable_body(raw)
    if len(raw) > MAX_BODY_BYTES and not _carries_media(body):
        return error(413, f"body larger than {MAX_BODY_BYTES} bytes (only a media message with base64 may be larger)")
    raw_data = body.get("data") if isinstance(body, dict) else None
    if unclean:
        # NUL / lone surrogates: Julia reads the text without them, the raw payload keeps them escaped.
        raw_data = storable_json.escaped(raw_data)
        body = storable_json.readable(body)
    try:
        event = parse_event(body, request.path_params.get("event"))
    except InvalidEvent as exc:
        return error(400, f"not an Evolution event: {exc}")
    if isinstance(event, Ignored):
        return JSONResponse({"status": "ignored", "event": event.event, "reason": event.reason})
    if isinstance(event, list):
        return await _record_statuses(request, event, _instance(body))
    if isinstance(event, ConnectionUpdate):
        return await _record_connection(request, event)
    name = normalize_event_name(str(body.get("event") or request.path_params.get("event") or ""))
    message = {"v": 1, "event": name, "message": event.to_json(), "raw": raw_data}
    try:
        async with request.state.pool.connection(timeout=WEBHOOK_DB_WAIT_SECONDS) as conn:
            cur = await conn.execute(queries["enqueue_inbound"], {"message": Jsonb(message)})
            row = await cur.fetchone()
    except psycopg.Error as exc:
        return _database_failure(exc, "webhook_enqueue_failed")
    logger.info(
        "webhook queued",
        extra={"action": "webhook_queued", "msg_id": row["msg_id"], "message_id": event.message_id},
    )
    return JSONResponse({"status": "queued", "msg_id": row["msg_id"]})


async def _record_statuses(request: Request, updates: list[StatusUpdate], instance: str | None) -> JSONResponse:
    """messages.update: one SQL call per status (usually one) records it."""
    matched = 0
    try:
        async with request.state.pool.connection(timeout=WEBHOOK_DB_WAIT_SECONDS) as conn:
            for update in updates:
                cur = await conn.execute(
                    queries["record_delivery_status"],
                    {
                        "message_id": update.message_id,
                        "status": update.status,
                        # Evolution's messages.update carries no error code.
                        "error_code": None,
                        "remote_jid": update.remote_jid,
                        "instance": instance,
                    },
                )
                matched += (await cur.fetchone())["outbox_id"] is not None
    except psycopg.Error as exc:
        return _database_failure(exc, "webhook_status_failed")
    return JSONResponse({"status": "recorded", "updates": len(updates), "matched": matched})


def _database_failure(exc: psycopg.Error, action: str) -> JSONResponse:
    """Nothing was stored: 4xx when the data is at fault (Evolution must not
    retry it), 503 when the database is (Evolution delivers again later)."""
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        reason = (exc.diag.message_primary or type(exc).__name__)[:200]
        logger.warning("webhook refused by the database", extra={"action": action, "error": reason})
        return error(422, f"body cannot be stored: {reason}")
    unavailable = is_connection_error(exc)
    logger.error(
        "webhook not stored",
        extra={"action": action, "error": type(exc).__name__, "database_unavailable": unavailable},
    )
    return error(503, "database unavailable, retry later" if unavailable else "database error, retry later")


def _instance(body: dict) -> str | None:
    """The Evolution instance (number) a webhook comes from, if it says."""
    value = body.get("instance")
    return value.strip() or None if isinstance(value, str) else None


async def _record_connection(request: Request, update: ConnectionUpdate) -> JSONResponse:
    """connection.update: the number's state (open/close/connecting), by instance."""
    params = {
        "instance": update.instance,
        "state": update.state,
        "reason": update.reason,
        "payload": Jsonb({"state": update.state, "statusReason": update.reason}),
    }
    try:
        async with request.state.pool.connection() as conn:
            result = (await (await conn.execute(queries["record_connection_update"], params)).fetchone())["result"]
    except psycopg.Error as exc:
        return _database_failure(exc, "webhook_connection_failed")
    level = logging.WARNING if result == "unknown" or update.state != "open" else logging.INFO
    logger.log(
        level,
        "number connection",
        extra={"action": "number_connection", "instance": update.instance, "state": update.state, "result": result},
    )
    return JSONResponse({"status": "recorded", "instance": update.instance, "state": update.state, "result": result})


# Each answer is counted by outcome (julia_webhooks_total, app/http/metrics.py).
_counted_webhook = count_webhooks("evolution", evolution_webhook)

ROUTES: list[BaseRoute] = [
    Route("/webhooks/evolution", _counted_webhook, methods=["POST"]),
    Route("/webhooks/evolution/{event}", _counted_webhook, methods=["POST"]),
]

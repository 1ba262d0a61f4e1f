"""The HTTP process: Evolution webhooks in, health out. Nothing here calls
the LLM or Evolution; a webhook becomes one SQL call.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TypedDict

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.config import Settings
from app.evolution_events import Ignored, InvalidEvent, parse_event
from app.queries import queries
from app.runtime import new_pool
from app.webhook_auth import webhook_authorized

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024


class State(TypedDict):
    settings: Settings
    pool: AsyncConnectionPool


def error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


async def evolution_webhook(request: Request) -> JSONResponse:
    """POST /webhooks/evolution[/{event}]: authenticate, parse, enqueue."""
    settings: Settings = request.state.settings
    if (settings.evolution_webhook_secret or not settings.is_dev) and not webhook_authorized(
        request.headers, settings.evolution_webhook_secret
    ):
        return error(401, "missing or invalid webhook credentials")
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > MAX_BODY_BYTES:
        return error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return error(400, f"malformed JSON: {exc}")
    try:
        event = parse_event(body, request.path_params.get("event"))
    except InvalidEvent as exc:
        return error(400, f"not an Evolution event: {exc}")
    if isinstance(event, Ignored):
        return JSONResponse({"status": "ignored", "event": event.event, "reason": event.reason})
    message = {"v": 1, "event": "messages.upsert", "message": event.to_json(), "raw": body.get("data")}
    try:
        async with request.state.pool.connection() as conn:
            cur = await conn.execute(queries["enqueue_inbound"], {"message": Jsonb(message)})
            row = await cur.fetchone()
    except psycopg.Error as exc:
        # 503 makes Evolution deliver again later; nothing was stored.
        logger.error("enqueue failed", extra={"action": "webhook_enqueue_failed", "error": type(exc).__name__})
        return error(503, "database unavailable, retry later")
    logger.info(
        "webhook queued",
        extra={"action": "webhook_queued", "msg_id": row["msg_id"], "message_id": event.message_id},
    )
    return JSONResponse({"status": "queued", "msg_id": row["msg_id"]})


async def health(request: Request) -> JSONResponse:
    """GET /health: the process is alive."""
    return JSONResponse({"status": "ok", "service": "julia-api"})


async def health_ready(request: Request) -> JSONResponse:
    """GET /health/ready: the database answers."""
    try:
        async with request.state.pool.connection(timeout=5) as conn:
            await conn.execute(queries["ping"])
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ready", "database": "ok"})


ROUTES: list[BaseRoute] = [
    Route("/webhooks/evolution", evolution_webhook, methods=["POST"]),
    Route("/webhooks/evolution/{event}", evolution_webhook, methods=["POST"]),
    Route("/health", health, methods=["GET"]),
    Route("/health/ready", health_ready, methods=["GET"]),
]


def create_app(
    settings: Settings, *, extra_routes: Sequence[BaseRoute] = (), pool: AsyncConnectionPool | None = None
) -> Starlette:
    """The Starlette app; `lifespan` owns the pool unless one is given."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        own = pool is None
        the_pool = pool or new_pool(settings, max_size=20, name="julia-api")
        if own:
            await the_pool.open(wait=True, timeout=30)
        logger.info("api started", extra={"action": "api_start", "app_env": settings.app_env})
        try:
            yield {"settings": settings, "pool": the_pool}
        finally:
            if own:
                await the_pool.close()

    return Starlette(routes=[*ROUTES, *extra_routes], lifespan=lifespan)

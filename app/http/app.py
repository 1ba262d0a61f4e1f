"""The HTTP process: Evolution webhooks in, health out. Nothing here calls
the LLM or Evolution; a webhook becomes one SQL call.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import TypedDict

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.core.config import Settings
from app.core.ops_token import Unauthorized, verify_ops_token
from app.events import storable_json
from app.events.evolution import (
    ConnectionUpdate,
    Ignored,
    InvalidEvent,
    StatusUpdate,
    normalize_event_name,
    parse_event,
)
from app.http import chatwoot as chatwoot_webhook
from app.http import ops as ops_api
from app.http import slack as slack_commands
from app.http.auth import webhook_authorized
from app.http.chatwoot_rescue import ChatwootRescue
from app.store import schema
from app.store.errors import is_connection_error
from app.store.queries import queries
from app.worker.runtime import new_pool

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024
# A webhook waits this long for a database connection, then answers 503 (Evolution retries):
# answering fast beats holding Evolution's request through an outage.
WEBHOOK_DB_WAIT_SECONDS = 3.0
# A doctor's photo or PDF arrives base64-encoded in the webhook (webhook_base64):
# room for a 16 MB file (app/worker/chatwoot_sync.py MAX_MEDIA_BYTES) and its envelope.
MAX_MEDIA_BODY_BYTES = 24 * 1024 * 1024


class State(TypedDict):
    settings: Settings
    pool: AsyncConnectionPool
    chatwoot_rescue: ChatwootRescue


def error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


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
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > MAX_MEDIA_BODY_BYTES:
        return error(413, f"body larger than {MAX_MEDIA_BODY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_MEDIA_BODY_BYTES:
        return error(413, f"body larger than {MAX_MEDIA_BODY_BYTES} bytes")
    try:
        body, unclean = storable_json.loads(raw)
    except storable_json.NotStorable as exc:
        return error(422, f"body cannot be stored: {exc}")
    except (ValueError, UnicodeDecodeError) as exc:
        return error(400, f"malformed JSON: {exc}")
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


async def health(request: Request) -> JSONResponse:
    """GET /health: the process is alive."""
    return JSONResponse({"status": "ok", "service": "julia-api"})


async def health_ready(request: Request) -> JSONResponse:
    """GET /health/ready: the database answers."""
    try:
        async with request.state.pool.connection(timeout=5) as conn:
            await conn.execute(queries["ping"])
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        logger.warning("database unavailable", extra={"action": "health_db_unavailable", "error": type(exc).__name__})
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable", "error": type(exc).__name__}, status_code=503
        )
    return JSONResponse({"status": "ready", "database": "ok"})


async def health_deep(request: Request) -> JSONResponse:
    """GET /health/deep: every check, and whether this deploy is safe (503 if not)."""
    settings: Settings = request.state.settings
    started = time.perf_counter()
    try:
        async with request.state.pool.connection(timeout=5) as conn:
            cur = await conn.execute(
                queries["health_report"],
                {
                    "app_env": settings.app_env,
                    "project_ref": settings.supabase_project_ref,
                    "expected_revision": schema.expected_head(),
                    "known_revisions": list(schema.revision_chain()),
                },
            )
            report = (await cur.fetchone())["report"]
            status = await schema.schema_status_async(conn)
    except Exception as exc:  # noqa: BLE001 - an unreachable database is a health answer, not a crash
        report = {
            "status": "critical",
            "checks": {"database": {"status": "critical", "error": type(exc).__name__}},
            "deploy_safe": False,
        }
    else:
        report["checks"]["database"]["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
        if files := status.files:
            # The revision is right but replaceable SQL this code needs is not applied.
            report["checks"]["schema_files"] = {
                "status": "critical",
                "files": [f"db/{f}" for f in files],
                "detail": "run julia db upgrade",
            }
            report["status"], report["deploy_safe"] = "critical", False
    if not report["deploy_safe"]:
        logger.error("deep health failed", extra={"action": "health_deep_critical", "checks": report["checks"]})
    return JSONResponse(report, status_code=200 if report["deploy_safe"] else 503)


async def health_schema(request: Request) -> JSONResponse:
    """GET /health/schema: the database's revision and replaceable SQL vs the code's (503 naming what is missing)."""
    try:
        async with request.state.pool.connection(timeout=5) as conn:
            status = await schema.schema_status_async(conn)
    except psycopg.Error as exc:
        return JSONResponse({"status": "unavailable", "error": type(exc).__name__}, status_code=503)
    return JSONResponse(status.as_json(), status_code=200 if status.ok or status.ahead else 503)


async def health_rate_limit(request: Request) -> JSONResponse:
    """GET /health/rate-limit: proactive sends this hour and today vs the database's
    limits, in total and per number (never this process's environment)."""
    async with request.state.pool.connection(timeout=5) as conn:
        status = (await (await conn.execute(queries["rate_limit_status"])).fetchone())["status"]
    return JSONResponse(status)


async def ops_pause(request: Request) -> JSONResponse:
    """POST /ops/pause and /ops/resume {"motivo": "..."}: operator JWT required."""
    settings: Settings = request.state.settings
    if not settings.jwt_secret_key:
        return error(503, "ops API disabled: JWT_SECRET_KEY is not set")
    try:
        claims = verify_ops_token(request.headers, settings.jwt_secret_key)
    except Unauthorized as exc:
        return error(401, str(exc))
    try:
        body = await request.json()
    except ValueError:
        return error(400, "body must be JSON with a 'motivo'")
    motivo = body.get("motivo") if isinstance(body, dict) else None
    if not isinstance(motivo, str) or not motivo.strip():
        return error(400, "'motivo' (the reason) is required")
    resume = request.url.path.endswith("/resume")
    async with request.state.pool.connection() as conn:
        await conn.execute(queries["resume_julia" if resume else "pause_julia"], {"motivo": motivo, "via": "api"})
        state = await (await conn.execute(queries["julia_state"])).fetchone()
    logger.warning(
        "julia resumed" if resume else "julia paused",
        extra={"action": "julia_resumed" if resume else "julia_paused", "via": "api", "operator": claims.get("sub")},
    )
    return JSONResponse({**state, "since": state["since"].isoformat() if state["since"] else None})


async def jobs_reconcile_touches(request: Request) -> JSONResponse:
    """POST /jobs/reconcile-touches (the seed's smoke-test job): operator JWT required."""
    settings: Settings = request.state.settings
    if not settings.jwt_secret_key:
        return error(503, "ops API disabled: JWT_SECRET_KEY is not set")
    try:
        verify_ops_token(request.headers, settings.jwt_secret_key)
    except Unauthorized as exc:
        return error(401, str(exc))
    async with request.state.pool.connection() as conn:
        updated = (await (await conn.execute(queries["reconcile_touches"])).fetchone())["updated"]
    return JSONResponse({"status": "ok", "updated": updated})


ROUTES: list[BaseRoute] = [
    Route("/webhooks/evolution", evolution_webhook, methods=["POST"]),
    Route("/webhooks/evolution/{event}", evolution_webhook, methods=["POST"]),
    Route("/health", health, methods=["GET"]),
    Route("/health/ready", health_ready, methods=["GET"]),
    Route("/health/deep", health_deep, methods=["GET"]),
    Route("/health/schema", health_schema, methods=["GET"]),
    Route("/health/rate-limit", health_rate_limit, methods=["GET"]),
    Route("/jobs/reconcile-touches", jobs_reconcile_touches, methods=["POST"]),
    Route("/ops/pause", ops_pause, methods=["POST"]),
    Route("/ops/resume", ops_pause, methods=["POST"]),
    # Humans in the loop (issue 7): Chatwoot, Slack, ops console reads.
    *chatwoot_webhook.ROUTES,
    *slack_commands.ROUTES,
    *ops_api.ROUTES,
]


def create_app(
    settings: Settings, *, extra_routes: Sequence[BaseRoute] = (), pool: AsyncConnectionPool | None = None
) -> Starlette:
    """The Starlette app; `lifespan` owns the pool unless one is given."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        own = pool is None
        the_pool = pool or new_pool(settings, min_size=4, max_size=20, name="julia-api")
        if own:
            await the_pool.open(wait=True, timeout=30)
        logger.info("api started", extra={"action": "api_start", "app_env": settings.app_env})
        rescue = ChatwootRescue(settings)
        try:
            yield {"settings": settings, "pool": the_pool, "chatwoot_rescue": rescue}
        finally:
            await rescue.aclose()
            if own:
                await the_pool.close()

    # The ops console is served from other origins (CORS_ORIGINS); none set, no CORS.
    middleware = (
        [
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type"],
                max_age=600,
            )
        ]
        if settings.cors_origins
        else []
    )
    return Starlette(routes=[*ROUTES, *extra_routes], middleware=middleware, lifespan=lifespan)

"""Read-only JSON endpoints for an ops console, each one SQL function:
GET /ops/status, /ops/queues, /ops/conversations?limit=N, /ops/handoffs
(Bearer JWT, as /ops/pause), and GET /handoff/context for an external
system holding a signed handoff link (the `external_handoff` flag).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.core.config import Settings
from app.core.handoff_token import InvalidHandoffToken, verify_handoff_token
from app.core.ops_token import Unauthorized, verify_ops_token
from app.store.queries import queries

logger = logging.getLogger(__name__)

MAX_CONVERSATIONS = 200


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def _refusal(request: Request) -> JSONResponse | None:
    """None when the request carries a valid operator token, else the error response."""
    settings: Settings = request.state.settings
    if not settings.jwt_secret_key:
        return _error(503, "ops API disabled: JWT_SECRET_KEY is not set")
    try:
        verify_ops_token(request.headers, settings.jwt_secret_key)
    except Unauthorized as exc:
        return _error(401, str(exc))
    return None


async def _value(request: Request, name: str, **params: Any) -> Any:
    async with request.state.pool.connection(timeout=10) as conn:
        cur = await conn.execute(queries[name], params)
        return (await cur.fetchone())["result"]


async def ops_status(request: Request) -> JSONResponse:
    """GET /ops/status: pause state, open handoffs and conversations, failures, queues."""
    if (refused := _refusal(request)) is not None:
        return refused
    async with request.state.pool.connection(timeout=10) as conn:
        status = (await (await conn.execute(queries["ops_status"])).fetchone())["status"]
    return JSONResponse(status)


async def ops_queues(request: Request) -> JSONResponse:
    """GET /ops/queues: inbound depth, jobs per queue and state, outbox, mirror, notifications."""
    if (refused := _refusal(request)) is not None:
        return refused
    return JSONResponse(await _value(request, "ops_queue_depths"))


async def ops_conversations(request: Request) -> JSONResponse:
    """GET /ops/conversations?limit=N: the most recently active conversations."""
    if (refused := _refusal(request)) is not None:
        return refused
    raw = request.query_params.get("limit", "20")
    if not raw.isdecimal() or not 1 <= int(raw) <= MAX_CONVERSATIONS:
        return _error(400, f"'limit' must be an integer from 1 to {MAX_CONVERSATIONS}")
    return JSONResponse({"conversations": await _value(request, "ops_recent_conversations", limit=int(raw))})


async def ops_handoffs(request: Request) -> JSONResponse:
    """GET /ops/handoffs: conversations a human owns now."""
    if (refused := _refusal(request)) is not None:
        return refused
    return JSONResponse({"handoffs": await _value(request, "ops_open_handoffs")})


async def ops_doctor(request: Request) -> JSONResponse:
    """GET /ops/doctor?address=5531...: the doctor an address names, in any of its forms."""
    if (refused := _refusal(request)) is not None:
        return refused
    address = request.query_params.get("address", "").strip()
    if not address:
        return _error(400, "'address' is required: a phone (any form), a WhatsApp JID or a LID")
    doctor = await _value(request, "ops_doctor", address=address)
    if doctor is None:
        return _error(404, f"no doctor has the address {address!r}")
    return JSONResponse(doctor)


async def handoff_context(request: Request) -> JSONResponse:
    """GET /handoff/context?token=JWT (or Bearer): the conversation a handoff link names."""
    settings: Settings = request.state.settings
    if not settings.jwt_secret_key:
        return _error(503, "handoff links disabled: JWT_SECRET_KEY is not set")
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    token = request.query_params.get("token") or (bearer.strip() if scheme.lower() == "bearer" else "")
    try:
        conversation_id = verify_handoff_token(token, settings.jwt_secret_key)
    except InvalidHandoffToken as exc:
        return _error(401, str(exc))
    try:
        async with request.state.pool.connection(timeout=10) as conn:
            cur = await conn.execute(queries["handoff_context"], {"conversation_id": conversation_id})
            context = (await cur.fetchone())["context"]
    except psycopg.errors.RaiseException:
        return _error(404, f"conversation {conversation_id} not found")
    logger.info("handoff link used", extra={"action": "handoff_link_used", "conversation_id": conversation_id})
    return JSONResponse(context)


ROUTES: list[BaseRoute] = [
    Route("/ops/status", ops_status, methods=["GET"]),
    Route("/ops/queues", ops_queues, methods=["GET"]),
    Route("/ops/conversations", ops_conversations, methods=["GET"]),
    Route("/ops/handoffs", ops_handoffs, methods=["GET"]),
    Route("/ops/doctor", ops_doctor, methods=["GET"]),
    Route("/handoff/context", handoff_context, methods=["GET"]),
]

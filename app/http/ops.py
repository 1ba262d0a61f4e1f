"""The operators' API, each endpoint one SQL function behind an operator
token (`Authorization: Bearer`, see `julia token`): POST /ops/pause and
/ops/resume, POST /jobs/reconcile-touches (the seed's smoke-test job), and
the reads GET /ops/status, /ops/queues, /ops/conversations?limit=N,
/ops/handoffs, /ops/doctor — plus GET /handoff/context for an external
system holding a signed handoff link (the `external_handoff` flag).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.core.config import Settings
from app.core.errors import NotFound
from app.core.tokens import InvalidHandoffToken, verify_handoff_token
from app.http.auth import Refusal, require_operator
from app.store.pool import fetch_one

logger = logging.getLogger(__name__)

MAX_CONVERSATIONS = 200


async def _value(request: Request, name: str, **params: Any) -> Any:
    return (await fetch_one(request.state.pool, name, wait=10, **params))["result"]


async def ops_pause(request: Request) -> JSONResponse:
    """POST /ops/pause and /ops/resume {"motivo": "..."}: operator JWT required."""
    claims = require_operator(request)
    try:
        body = await request.json()
    except ValueError:
        raise Refusal(400, "body must be JSON with a 'motivo'") from None
    motivo = body.get("motivo") if isinstance(body, dict) else None
    if not isinstance(motivo, str) or not motivo.strip():
        raise Refusal(400, "'motivo' (the reason) is required")
    resume = request.url.path.endswith("/resume")
    pool = request.state.pool
    row = await fetch_one(pool, "resume_julia" if resume else "pause_julia", motivo=motivo, via="api")
    changed = row["id"] is not None
    state = await fetch_one(pool, "julia_state")
    if changed:
        logger.warning(
            "julia resumed" if resume else "julia paused",
            extra={
                "action": "julia_resumed" if resume else "julia_paused",
                "via": "api",
                "operator": claims.get("sub"),
            },
        )
    since = state["since"].isoformat() if state["since"] else None
    return JSONResponse({**state, "since": since, "changed": changed})


async def jobs_reconcile_touches(request: Request) -> JSONResponse:
    """POST /jobs/reconcile-touches (the seed's smoke-test job): operator JWT required."""
    require_operator(request)
    updated = (await fetch_one(request.state.pool, "reconcile_touches"))["updated"]
    return JSONResponse({"status": "ok", "updated": updated})


async def ops_status(request: Request) -> JSONResponse:
    """GET /ops/status: pause state, open handoffs and conversations, failures, queues."""
    require_operator(request)
    return JSONResponse((await fetch_one(request.state.pool, "ops_status", wait=10))["status"])


async def ops_queues(request: Request) -> JSONResponse:
    """GET /ops/queues: inbound depth, jobs per queue and state, outbox, mirror, notifications."""
    require_operator(request)
    return JSONResponse(await _value(request, "ops_queue_depths"))


async def ops_conversations(request: Request) -> JSONResponse:
    """GET /ops/conversations?limit=N: the most recently active conversations."""
    require_operator(request)
    raw = request.query_params.get("limit", "20")
    if not raw.isdecimal() or not 1 <= int(raw) <= MAX_CONVERSATIONS:
        raise Refusal(400, f"'limit' must be an integer from 1 to {MAX_CONVERSATIONS}")
    return JSONResponse({"conversations": await _value(request, "ops_recent_conversations", limit=int(raw))})


async def ops_handoffs(request: Request) -> JSONResponse:
    """GET /ops/handoffs: conversations a human owns now."""
    require_operator(request)
    return JSONResponse({"handoffs": await _value(request, "ops_open_handoffs")})


async def ops_doctor(request: Request) -> JSONResponse:
    """GET /ops/doctor?address=5531...: the doctor an address names, in any of its forms."""
    require_operator(request)
    address = request.query_params.get("address", "").strip()
    if not address:
        raise Refusal(400, "'address' is required: a phone (any form), a WhatsApp JID or a LID")
    doctor = await _value(request, "ops_doctor", address=address)
    if doctor is None:
        raise Refusal(404, f"no doctor has the address {address!r}")
    return JSONResponse(doctor)


async def handoff_context(request: Request) -> JSONResponse:
    """GET /handoff/context?token=JWT (or Bearer): the conversation a handoff link names."""
    settings: Settings = request.state.settings
    if not settings.jwt_secret_key:
        raise Refusal(503, "handoff links disabled: JWT_SECRET_KEY is not set")
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    token = request.query_params.get("token") or (bearer.strip() if scheme.lower() == "bearer" else "")
    try:
        conversation_id = verify_handoff_token(token, settings.jwt_secret_key)
    except InvalidHandoffToken as exc:
        raise Refusal(401, str(exc)) from None
    try:
        context = (await fetch_one(request.state.pool, "handoff_context", wait=10, conversation_id=conversation_id))[
            "context"
        ]
    except NotFound:
        raise Refusal(404, f"conversation {conversation_id} not found") from None
    logger.info("handoff link used", extra={"action": "handoff_link_used", "conversation_id": conversation_id})
    return JSONResponse(context)


ROUTES: list[BaseRoute] = [
    Route("/ops/pause", ops_pause, methods=["POST"]),
    Route("/ops/resume", ops_pause, methods=["POST"]),
    Route("/jobs/reconcile-touches", jobs_reconcile_touches, methods=["POST"]),
    Route("/ops/status", ops_status, methods=["GET"]),
    Route("/ops/queues", ops_queues, methods=["GET"]),
    Route("/ops/conversations", ops_conversations, methods=["GET"]),
    Route("/ops/handoffs", ops_handoffs, methods=["GET"]),
    Route("/ops/doctor", ops_doctor, methods=["GET"]),
    Route("/handoff/context", handoff_context, methods=["GET"]),
]

"""Health answers: alive, database ready, deep (every check and whether this
deploy is safe), schema (revision and replaceable SQL vs the code's) and
today's send counters against the database's limits.
"""

from __future__ import annotations

import logging
import time

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.core.config import Settings
from app.store import schema
from app.store.queries import queries

logger = logging.getLogger(__name__)


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


ROUTES: list[BaseRoute] = [
    Route("/health", health, methods=["GET"]),
    Route("/health/ready", health_ready, methods=["GET"]),
    Route("/health/deep", health_deep, methods=["GET"]),
    Route("/health/schema", health_schema, methods=["GET"]),
    Route("/health/rate-limit", health_rate_limit, methods=["GET"]),
]

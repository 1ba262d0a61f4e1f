"""The api process: one Starlette app whose routes are the surfaces of
app.http (Evolution webhook, health, ops, Chatwoot, Slack). Nothing here calls
the LLM or sends to Evolution; each request becomes one or a few SQL calls.
GET /metrics (app.http.metrics) exports the api's and, from SQL, the workers' series.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TypedDict

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from app.core.config import Settings
from app.http import chatwoot, console, evolution, health, metrics, ops, slack
from app.http.auth import Refusal, answer_refusal
from app.http.chatwoot_rescue import ChatwootRescue
from app.http.ingest import InboundBatcher
from app.store.pool import new_pool

logger = logging.getLogger(__name__)


class State(TypedDict):
    settings: Settings
    pool: AsyncConnectionPool
    chatwoot_rescue: ChatwootRescue
    inbound: InboundBatcher


ROUTES: list[BaseRoute] = [
    *evolution.ROUTES,
    *health.ROUTES,
    *metrics.ROUTES,
    *ops.ROUTES,
    *console.ROUTES,
    *chatwoot.ROUTES,
    *slack.ROUTES,
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
        inbound = InboundBatcher(
            the_pool,
            window_seconds=settings.ingest_batch_window_ms / 1000,
            wait_seconds=evolution.WEBHOOK_DB_WAIT_SECONDS,
        )
        try:
            yield {"settings": settings, "pool": the_pool, "chatwoot_rescue": rescue, "inbound": inbound}
        finally:
            await inbound.aclose()
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
    return Starlette(
        routes=[*ROUTES, *extra_routes],
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={Refusal: answer_refusal},
    )

"""What a running process holds: settings, the database pool and clients.

Built once at start-up (worker lifespan or `julia dev`) and handed to jobs
through procrastinate's additional context.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from app.conversation.embeddings import Embedder, build_embedder
from app.core.config import Settings
from app.integrations.evolution import EvolutionClient
from app.integrations.llm import LLMClient


@dataclass(frozen=True, kw_only=True)
class Runtime:
    settings: Settings
    pool: AsyncConnectionPool
    evolution: EvolutionClient
    llm: LLMClient
    embedder: Embedder | None = None  # None = no knowledge retrieval

    async def aclose(self) -> None:
        await self.evolution.aclose()
        await self.llm.aclose()
        if self.embedder is not None:
            await self.embedder.aclose()


def build_runtime(settings: Settings, pool: AsyncConnectionPool) -> Runtime:
    """Clients configured from settings (base URLs are those production uses)."""
    return Runtime(
        settings=settings,
        pool=pool,
        evolution=EvolutionClient(
            base_url=settings.evolution_api_url,
            api_key=settings.evolution_api_key,
            instance=settings.evolution_instance,
        ),
        llm=LLMClient(api_key=settings.anthropic_api_key, base_url=settings.anthropic_base_url),
        embedder=build_embedder(settings),
    )


def fault_point(settings: Settings, name: str) -> None:
    """Crash the process at a named point, for crash-recovery tests.

    Only honoured when APP_ENV=test and JULIA_FAULT names this point.
    """
    if settings.app_env == "test" and os.environ.get("JULIA_FAULT") == name:
        os._exit(86)

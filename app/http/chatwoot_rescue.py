"""An agent's Chatwoot message (or resolution) that the api could not store: Chatwoot never
retries a webhook, so the api keeps it in memory and keeps trying, tells
the agent in the Chatwoot conversation (a private note, which needs no
database) and alerts the operators on Slack, at once and again when it
gives up. Never a silent loss: every outcome reaches the agent.

Used by app/http/chatwoot.py; `lifespan` owns one per api process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from app.core.config import Settings
from app.integrations.chatwoot import ChatwootClient, ChatwootError, chatwoot_configured
from app.integrations.slack import SlackClient, SlackError

logger = logging.getLogger(__name__)

RETRY_EVERY_SECONDS = 2.0
# What the store callback raises when the database is (still) unavailable.
Store = Callable[[], Awaitable[dict[str, Any]]]


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:199] + "…"


def _span(seconds: float) -> str:
    return f"{round(seconds / 60)} min" if seconds >= 90 else f"{round(seconds)} s"


def pending_note(content: str, span: str, *, resolved: bool = False) -> str:
    if resolved:
        return (
            "⚠️ Julia não conseguiu registrar que esta conversa foi resolvida (banco de dados indisponível): "
            f"ela AINDA NÃO voltou para a Julia. Julia tenta de novo por até {span} e avisa aqui."
        )
    return (
        "⚠️ Julia não conseguiu registrar esta mensagem (banco de dados indisponível): "
        "ela AINDA NÃO foi entregue ao médico. "
        f"Julia tenta de novo por até {span} e avisa aqui quando entregar ou desistir.\n"
        f"Mensagem: «{_excerpt(content)}»"
    )


def delivered_note(content: str, *, resolved: bool = False) -> str:
    if resolved:
        return "✅ Resolução registrada depois da falha do banco: a conversa voltou para a Julia."
    return f"✅ Mensagem registrada depois da falha do banco; vai ser entregue ao médico: «{_excerpt(content)}»"


def lost_note(content: str, why: str, *, resolved: bool = False) -> str:
    if resolved:
        return f"❌ A resolução NÃO foi registrada ({why}): reabra e resolva a conversa de novo, por favor."
    return f"❌ Esta mensagem NÃO foi entregue ao médico ({why}). Envie de novo, por favor: «{_excerpt(content)}»"


class ChatwootRescue:
    """Background retries of agent messages the webhook could not store."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def start(
        self,
        *,
        chatwoot_conversation_id: int,
        chatwoot_message_id: int | None,
        content: str,
        store: Store,
        resolved: bool = False,
    ) -> None:
        """Tell the agent and operators now, then keep calling `store` until it works or time
        runs out. `resolved`: the event is a resolution (hand-back), not a message."""
        task = asyncio.create_task(self._run(chatwoot_conversation_id, chatwoot_message_id, content, store, resolved))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """The api stops: give up on what is still waiting, telling the agent."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)

    async def _run(
        self, conversation_id: int, message_id: int | None, content: str, store: Store, resolved: bool
    ) -> None:
        log = {"chatwoot_conversation_id": conversation_id, "chatwoot_message_id": message_id}
        span = _span(self._settings.chatwoot_rescue_seconds)
        what = "resolução" if resolved else f"mensagem {message_id}"
        await self._tell(conversation_id, pending_note(content, span, resolved=resolved), log)
        await self._alert(
            f":rotating_light: Chatwoot: {what} de agente não registrada (banco indisponível), conversa "
            f"{conversation_id}. Julia tenta por até {span}.",
            log,
        )
        deadline = time.monotonic() + self._settings.chatwoot_rescue_seconds
        why = "o banco de dados continuou indisponível"
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(RETRY_EVERY_SECONDS)
                try:
                    row = await store()
                except Exception as exc:  # noqa: BLE001 - still unavailable: keep trying until the deadline
                    logger.info(
                        "chatwoot rescue waits", extra={"action": "chatwoot_rescue_wait", "error": str(exc), **log}
                    )
                    continue
                logger.warning(
                    "chatwoot message rescued",
                    extra={"action": "chatwoot_rescued", "status": row.get("status"), **log},
                )
                if row.get("status") in ("queued", "handed_back"):
                    await self._tell(conversation_id, delivered_note(content, resolved=resolved), log)
                return
        except asyncio.CancelledError:
            why = "a api parou antes de conseguir registrar"
        logger.error("chatwoot message lost", extra={"action": "chatwoot_rescue_failed", "reason": why, **log})
        await self._tell(conversation_id, lost_note(content, why, resolved=resolved), log)
        await self._alert(
            f":x: Chatwoot: {what} da conversa {conversation_id} NÃO foi registrada nem entregue ({why}); "
            "o agente foi avisado para refazer.",
            log,
        )

    async def _tell(self, conversation_id: int, text: str, log: dict[str, Any]) -> None:
        if not chatwoot_configured(self._settings):
            return
        try:
            async with ChatwootClient.from_settings(self._settings) as client:
                await client.create_message(conversation_id, text, private=True)
        except ChatwootError as exc:
            logger.error("agent not told", extra={"action": "chatwoot_rescue_note_failed", "error": str(exc), **log})

    async def _alert(self, text: str, log: dict[str, Any]) -> None:
        try:
            async with SlackClient.from_settings(self._settings) as slack:
                await slack.post(text)
        except SlackError as exc:
            logger.error(
                "operators not alerted", extra={"action": "chatwoot_rescue_alert_failed", "error": str(exc), **log}
            )

"""Claude through the official anthropic SDK.

The SDK reads ANTHROPIC_BASE_URL itself; we pass it explicitly when set so a
stand-in or a proxy is used the same way in every process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anthropic

logger = logging.getLogger(__name__)


class LLMError(Exception):
    """The model call failed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, kw_only=True)
class LLMReply:
    text: str
    model: str
    input_tokens: int
    output_tokens: int


class LLMClient:
    """One AsyncAnthropic client per process."""

    def __init__(self, *, api_key: str, base_url: str = "", max_retries: int = 2, timeout: float = 60.0) -> None:
        kwargs: dict[str, object] = {"api_key": api_key, "max_retries": max_retries, "timeout": timeout}
        if base_url:
            kwargs["base_url"] = base_url
        self._client = anthropic.AsyncAnthropic(**kwargs)

    async def aclose(self) -> None:
        await self._client.close()

    async def reply(self, *, model: str, system: list[dict], messages: list[dict], max_tokens: int) -> LLMReply:
        """Ask Claude for the next assistant turn; raises LLMError."""
        try:
            response = await self._client.messages.create(
                model=model, system=system, messages=messages, max_tokens=max_tokens
            )
        except anthropic.APIStatusError as exc:
            transient = exc.status_code >= 500 or exc.status_code in (408, 409, 429)
            raise LLMError(f"Anthropic answered {exc.status_code}", transient=transient) from exc
        except anthropic.APIConnectionError as exc:
            raise LLMError(f"Anthropic unreachable: {type(exc).__name__}", transient=True) from exc
        # Thinking blocks may come first: read text blocks by type.
        text = "\n\n".join(b.text for b in response.content if b.type == "text").strip()
        return LLMReply(
            text=text,
            model=response.model,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
        )

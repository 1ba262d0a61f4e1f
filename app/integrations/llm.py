"""Claude through the official anthropic SDK.

The SDK reads ANTHROPIC_BASE_URL itself; we pass it explicitly when set so a
stand-in or a proxy is used the same way in every process.

The SDK is imported on the first call, not with this module: its import (its
pydantic types) costs 1-3 s of CPU, which every worker start would pay before
it takes its first job, sends and periodic jobs included. The first reply of a
process pays it once instead, in a thread, so the event loop keeps running.
Everything the first request would otherwise import on the loop is loaded in
that thread too: the client's transport (httpcore, ssl, truststore) when it is
built, and anyio's asyncio backend, which anyio imports on its first use. On a
starved machine those imports held the loop for tens of seconds: the worker's
heartbeat went stale and its own running jobs looked stalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.integrations.transport import ServiceError

if TYPE_CHECKING:
    import anthropic

logger = logging.getLogger(__name__)


class LLMError(ServiceError):
    """The model call failed."""

    service = "Anthropic"


@dataclass(frozen=True, kw_only=True)
class ToolUse:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class LLMResponse:
    text: str
    tool_uses: list[ToolUse]
    content: list[dict[str, Any]] = field(repr=False)  # blocks to send back in a tool loop
    stop_reason: str | None
    model: str
    input_tokens: int
    output_tokens: int


class LLMClient:
    """One AsyncAnthropic client per process."""

    def __init__(self, *, api_key: str, base_url: str = "", max_retries: int = 2, timeout: float = 60.0) -> None:
        self._options: dict[str, Any] = {"api_key": api_key, "max_retries": max_retries, "timeout": timeout}
        if base_url:
            self._options["base_url"] = base_url
        self._sdk: anthropic.AsyncAnthropic | None = None

    async def _client(self) -> anthropic.AsyncAnthropic:
        if self._sdk is None:
            # In a thread: the event loop keeps serving (in `julia dev` it is also the api's).
            sdk = await asyncio.to_thread(_load_sdk, self._options)
            if self._sdk is None:  # a concurrent first call may have made it meanwhile
                self._sdk = sdk
        return self._sdk

    async def aclose(self) -> None:
        if self._sdk is not None:
            await self._sdk.close()

    async def create(
        self,
        *,
        model: str,
        system: list[dict[str, Any]],
        messages: list[dict[str, Any]],
        max_tokens: int,
        tools: list[dict[str, Any]] | None = None,
        allow_tools: bool = True,
    ) -> LLMResponse:
        """One Messages API call; raises LLMError (transient or permanent)."""
        kwargs: dict[str, Any] = {"model": model, "system": system, "messages": messages, "max_tokens": max_tokens}
        if tools:
            kwargs["tools"] = tools
            if not allow_tools:
                # Not a forced choice (some models reject those): just no more tools.
                kwargs["tool_choice"] = {"type": "none"}
        client = await self._client()
        import anthropic  # loaded by _client(): a dictionary lookup

        try:
            # The raw answer, read here: the SDK's response models cost ~0.4 ms of CPU a call
            # (pydantic construction of every block) for fields we copy out at once.
            raw = await client.messages.with_raw_response.create(**kwargs)
        except anthropic.APIStatusError as exc:
            transient = exc.status_code >= 500 or exc.status_code in (408, 409, 429)
            raise LLMError(
                f"Anthropic answered {exc.status_code}", transient=transient, status=exc.status_code
            ) from exc
        except anthropic.APIConnectionError as exc:
            raise LLMError(f"Anthropic unreachable: {type(exc).__name__}", transient=True) from exc
        return read_message(raw.http_response.content)


def _load_sdk(options: dict[str, Any]) -> anthropic.AsyncAnthropic:
    """The SDK's client, built with every module its first request needs (run in a thread)."""
    sdk = importlib.import_module("anthropic")
    client = sdk.AsyncAnthropic(**options)  # imports its HTTP transport
    # What the first request would import on the loop: anyio's backend (a private module,
    # which a later anyio may name otherwise) and the propagators the SDK's tracing loads
    # (which it copes without). A warm-up only: what it cannot load must not fail the call.
    for module in ("anyio._backends._asyncio", "opentelemetry.propagate"):
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    return client


def read_message(body: bytes) -> LLMResponse:
    """An LLMResponse from a Messages API answer's JSON; LLMError (transient) when it is not one.

    Blocks go back to the model in a tool loop as they came, without their null
    fields (what the SDK's `model_dump(exclude_none=True)` sent).
    """
    try:
        message = json.loads(body)  # the stdlib's, as the SDK's: every JSON integer stays an int
        blocks = [{k: v for k, v in b.items() if v is not None} for b in message["content"]]
        usage = message["usage"]
        # Thinking blocks may come first: read blocks by type.
        text = "\n\n".join(b["text"] for b in blocks if b["type"] == "text").strip()
        tool_uses = [
            ToolUse(id=b["id"], name=b["name"], input=dict(b.get("input") or {}))
            for b in blocks
            if b["type"] == "tool_use"
        ]
        return LLMResponse(
            text=text,
            tool_uses=tool_uses,
            content=blocks,
            stop_reason=message.get("stop_reason"),
            model=message["model"],
            input_tokens=usage["input_tokens"],
            output_tokens=usage["output_tokens"],
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LLMError(f"Anthropic answered an unreadable message: {type(exc).__name__}", transient=True) from exc

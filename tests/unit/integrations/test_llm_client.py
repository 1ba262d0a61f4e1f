"""The Claude client against the stand-in (a real HTTP server on 127.0.0.1): it reads the
raw answer itself, and must read it as the SDK's own models would have."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import pytest

from app.devkit.standins.anthropic import AnthropicStandin
from app.integrations.llm import LLMClient, LLMError, LLMResponse, ToolUse, read_message

SYSTEM = [{"type": "text", "text": "Você é a Julia."}]
MESSAGES = [{"role": "user", "content": "Oi, tem plantão de UTI no sábado?"}]
TOOLS = [{"name": "buscar_vagas", "description": "Busca vagas", "input_schema": {"type": "object"}}]


@pytest.fixture
def claude() -> Iterator[AnthropicStandin]:
    with AnthropicStandin() as standin:
        yield standin


@pytest.fixture
async def llm(claude: AnthropicStandin) -> AsyncIterator[LLMClient]:
    client = LLMClient(api_key="test", base_url=claude.url, max_retries=0)
    yield client
    await client.aclose()


async def ask(llm: LLMClient) -> LLMResponse:
    return await llm.create(model="claude-haiku-4-5", system=SYSTEM, messages=MESSAGES, max_tokens=256, tools=TOOLS)


async def sdk_reading(claude: AnthropicStandin) -> dict[str, Any]:
    """What the SDK's models make of the same answer (the reading this client replaced)."""
    async with anthropic.AsyncAnthropic(api_key="test", base_url=claude.url, max_retries=0) as sdk:
        m = await sdk.messages.create(
            model="claude-haiku-4-5", system=SYSTEM, messages=MESSAGES, max_tokens=256, tools=TOOLS
        )
    return {
        "text": "\n\n".join(b.text for b in m.content if b.type == "text").strip(),
        "tool_uses": [ToolUse(id=b.id, name=b.name, input=dict(b.input)) for b in m.content if b.type == "tool_use"],
        "content": [b.model_dump(exclude_none=True) for b in m.content],
        "stop_reason": m.stop_reason,
        "model": m.model,
        "input_tokens": m.usage.input_tokens,
        "output_tokens": m.usage.output_tokens,
    }


def fields(response: LLMResponse) -> dict[str, Any]:
    return {k: getattr(response, k) for k in ("text", "tool_uses", "content", "stop_reason", "model")} | {
        "input_tokens": response.input_tokens,
        "output_tokens": response.output_tokens,
    }


def same_ids(reading: dict[str, Any]) -> dict[str, Any]:
    """The reading with the stand-in's random tool-use ids made one."""
    return {
        **reading,
        "tool_uses": [ToolUse(id="toolu", name=t.name, input=t.input) for t in reading["tool_uses"]],
        "content": [{**b, "id": "toolu"} if "id" in b else b for b in reading["content"]],
    }


@pytest.mark.parametrize("script", ["text", "tool_use", "thinking_then_text"])
async def test_reads_an_answer_as_the_sdk_models_do(claude: AnthropicStandin, llm: LLMClient, script: str) -> None:
    def queue() -> None:
        if script == "text":
            claude.queue_reply("Temos sim! Qual é a sua especialidade?")
        elif script == "tool_use":
            claude.queue_tool_use("buscar_vagas", {"especialidade": "UTI", "data": None}, text="Vou ver aqui.")
        else:
            claude.queue_thinking_then_text("Claro, te mando as vagas.")

    queue()
    ours = same_ids(fields(await ask(llm)))
    queue()
    assert ours == same_ids(await sdk_reading(claude))
    if script == "tool_use":
        # The tool's input keeps its nulls (only a block's own null fields are dropped).
        assert ours["tool_uses"][0].input == {"especialidade": "UTI", "data": None}
    assert ours["text"] or ours["tool_uses"]


@pytest.mark.parametrize(("status", "transient"), [(429, True), (529, True), (400, False)])
async def test_a_refusal_is_an_llm_error(claude: AnthropicStandin, llm: LLMClient, status: int, transient: bool):
    claude.queue_error(status)
    with pytest.raises(LLMError) as refused:
        await ask(llm)
    assert (refused.value.status, refused.value.transient) == (status, transient)


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"content": [{"type": "text"}], "model": "m"}', b"[]"])
def test_an_unreadable_answer_is_a_transient_llm_error(body: bytes) -> None:
    with pytest.raises(LLMError) as unreadable:
        read_message(body)
    assert unreadable.value.transient


FIRST_CALL = """
import asyncio, os, sys
from app.integrations.llm import LLMClient

async def main():
    llm = LLMClient(api_key="test", base_url=os.environ["CLAUDE_URL"], max_retries=0)
    await llm._client()  # what the first call loads in its thread
    before = set(sys.modules)
    await llm.create(model="claude-haiku-4-5", system=[], messages=[{"role": "user", "content": "Oi"}], max_tokens=9)
    print(" ".join(sorted(set(sys.modules) - before)))
    await llm.aclose()

asyncio.run(main())
"""


def test_the_first_call_imports_nothing_on_the_event_loop(claude: AnthropicStandin) -> None:
    """A fresh process: the SDK, its transport and what its first request needs load in the
    thread, so the loop (a worker's heartbeat, `julia dev`'s api) never waits on an import."""
    claude.queue_reply("Oi!")
    env = {**os.environ, "CLAUDE_URL": claude.url}
    done = subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []

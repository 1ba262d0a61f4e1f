"""The tool loop of one reply: ask Claude, run the tools it asks for (each
one SQL function call), give it the results, until it answers in text or
the rounds run out. Tool errors go back to the model, never to the doctor.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.conversation.routing import choose_model
from app.conversation.tools import TOOL_NAMES, TOOLS
from app.core.config import Settings
from app.core.errors import Conflict, InvalidInput, JuliaError, NotFound
from app.integrations.llm import LLMClient, LLMError, LLMResponse
from app.store.pool import fetch_one


class AgentRuntime(Protocol):
    """What the agent needs of a process (app.worker.runtime.Runtime has it)."""

    settings: Settings
    pool: AsyncConnectionPool
    llm: LLMClient


logger = logging.getLogger(__name__)

MAX_TOOL_ROUNDS = 4


@dataclass(frozen=True, kw_only=True)
class AgentResult:
    text: str
    tool_calls: list[str]
    rounds: int
    models: list[str]
    input_tokens: int
    output_tokens: int
    # With run_agent(record_last=False): the answering call's record_llm_call parameters, for
    # the caller to write with the reply (one statement fewer); None when it is recorded.
    unrecorded_call: dict[str, Any] | None = None


async def run_tool(rt: AgentRuntime, conversation_id: int, name: str, tool_input: dict[str, Any]) -> tuple[str, bool]:
    """Run one tool; returns (content for the model, is_error)."""
    if name not in TOOL_NAMES:
        return f"Ferramenta desconhecida: {name}", True
    try:
        row = await fetch_one(
            rt.pool, "execute_tool", conversation_id=conversation_id, name=name, input=Jsonb(tool_input)
        )
    except (InvalidInput, NotFound, Conflict) as exc:
        return str(exc) or "erro na ferramenta", True
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
        return f"entrada inválida: {exc.diag.message_primary}", True
    return json.dumps(row["result"], ensure_ascii=False, default=str), False


def llm_call_params(
    *,
    conversation_id: int,
    reply_to_id: int | None,
    job_id: int | None,
    model: str,
    started_at: datetime,
    response: LLMResponse | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The parameters of the record_llm_call query for one model call."""
    return {
        "conversation_id": conversation_id,
        "reply_to_id": reply_to_id,
        "job_id": job_id,
        "model": response.model if response else model,
        "outcome": "ok" if response else "error",
        "input_tokens": response.input_tokens if response else 0,
        "output_tokens": response.output_tokens if response else 0,
        "stop_reason": response.stop_reason if response else None,
        "error": error,
        "started_at": started_at,
    }


async def write_llm_call(rt: AgentRuntime, params: dict[str, Any]) -> None:
    """Record one model call (llm_calls) from its llm_call_params. Observability only: a
    failure to record is logged and never costs the reply."""
    try:
        await fetch_one(rt.pool, "record_llm_call", **params)
    except (psycopg.Error, JuliaError) as exc:
        logger.warning(
            "model call not recorded",
            extra={
                "action": "llm_call_unrecorded",
                "conversation_id": params["conversation_id"],
                "error": type(exc).__name__,
            },
        )


async def _ask_model(
    rt: AgentRuntime,
    call: dict[str, Any],
    *,
    model: str,
    system: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    allow_tools: bool,
) -> tuple[LLMResponse, datetime]:
    """One model call and its start; a failure is recorded here (and LLMError raised), an
    answer by the caller (run_agent), which knows whether it is the one the reply is written with."""
    started_at = datetime.now(UTC)
    try:
        response = await rt.llm.create(
            model=model,
            system=system,
            messages=messages,
            max_tokens=rt.settings.llm_max_tokens,
            tools=TOOLS,
            allow_tools=allow_tools,
        )
    except LLMError as exc:
        await write_llm_call(rt, llm_call_params(**call, model=model, started_at=started_at, error=str(exc)))
        raise
    return response, started_at


async def run_agent(
    rt: AgentRuntime,
    *,
    conversation_id: int,
    system: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    latest_text: str,
    max_rounds: int = MAX_TOOL_ROUNDS,
    reply_to_id: int | None = None,
    job_id: int | None = None,
    record_last: bool = True,
) -> AgentResult:
    """Loop until a text answer; raises LLMError from the model call.

    Every model call, answered or failed, is recorded in llm_calls (for
    /metrics and `julia trace`) with the message answered and the job;
    `record_last=False` leaves the answering call to the caller
    (`AgentResult.unrecorded_call`), who writes it with the reply.
    """
    call = {"conversation_id": conversation_id, "reply_to_id": reply_to_id, "job_id": job_id}
    s = rt.settings
    messages = list(messages)
    tool_calls: list[str] = []
    models: list[str] = []
    tokens_in = tokens_out = 0
    response: LLMResponse | None = None
    for round_no in range(max_rounds + 1):
        model = choose_model(latest_text, tool_rounds=round_no, simple=s.llm_model, complex_=s.llm_model_complex)
        models.append(model)
        response, started_at = await _ask_model(
            rt, call, model=model, system=system, messages=messages, allow_tools=round_no < max_rounds
        )
        tokens_in += response.input_tokens
        tokens_out += response.output_tokens
        answered = not response.tool_uses or round_no == max_rounds
        recorded = llm_call_params(**call, model=model, started_at=started_at, response=response)
        if record_last or not answered:
            await write_llm_call(rt, recorded)
        if answered:
            break
        messages.append({"role": "assistant", "content": response.content})
        messages.append({"role": "user", "content": await _run_tools(rt, conversation_id, response, tool_calls)})
    assert response is not None
    return AgentResult(
        text=response.text,
        tool_calls=tool_calls,
        rounds=len(models),
        models=models,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        unrecorded_call=None if record_last else recorded,
    )


async def _run_tools(
    rt: AgentRuntime, conversation_id: int, response: LLMResponse, tool_calls: list[str]
) -> list[dict[str, Any]]:
    """Run the tools a model call asked for, in order; their tool_result blocks (names added to `tool_calls`)."""
    results = []
    for use in response.tool_uses:
        content, is_error = await run_tool(rt, conversation_id, use.name, use.input)
        tool_calls.append(use.name)
        logger.info(
            "tool ran",
            extra={
                "action": "tool_error" if is_error else "tool_ok",
                "tool": use.name,
                "conversation_id": conversation_id,
            },
        )
        results.append({"type": "tool_result", "tool_use_id": use.id, "content": content, "is_error": is_error})
    return results

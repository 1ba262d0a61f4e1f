"""Reply jobs: answer the newest unanswered doctor messages of a conversation
— context from SQL (`reply_context`, which counts replies written but not yet
sent), knowledge, one agent run, the reply parts into the outbox.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from procrastinate import JobContext

from app.conversation import agent, knowledge
from app.conversation import prompt as conversation
from app.core.config import SAO_PAULO
from app.core.errors import TransientError
from app.integrations.llm import LLMError
from app.store.pool import fetch_one
from app.store.queries import queries
from app.worker.jobs import RETRY, app, handle_failure, runtime_of
from app.worker.runtime import Runtime

logger = logging.getLogger(__name__)

KNOWLEDGE_HITS = 4


@app.task(name="reply_to_conversation", queue="replies", pass_context=True, retry=RETRY)
async def reply_to_conversation(context: JobContext, conversation_id: int) -> str:
    """Answer the newest unanswered doctor message of a conversation."""
    rt = runtime_of(context)
    ctx = (await fetch_one(rt.pool, "reply_context", conversation_id=conversation_id))["context"]
    log = {"conversation_id": conversation_id, "job_id": context.job.id}
    if ctx["silence"]:
        # paused: resume re-defers; handoff/takeover: a human owns the conversation.
        logger.info("julia stays quiet", extra={"action": "reply_held", "reason": ctx["silence"], **log})
        return ctx["silence"]
    reply_to_id = ctx["reply_to_id"]
    messages = conversation.history_to_messages(ctx["history"])
    if reply_to_id is None or not messages:
        logger.info("nothing to answer", extra={"action": "reply_skipped", **log})
        return "nothing_to_answer"
    latest = conversation.latest_doctor_text(ctx["history"])
    system = conversation.build_system(
        empresa=rt.settings.nome_empresa,
        cliente=ctx["cliente"],
        prompt=ctx["prompt"],
        diretrizes=ctx["diretrizes"],
        knowledge=await _knowledge(rt, latest, log),
        today=datetime.now(SAO_PAULO).date(),
    )
    attempts = context.job.attempts + 1
    answering = {"reply_to_id": reply_to_id, "job_id": context.job.id}  # recorded with each model call
    try:
        # The answering call is recorded with the reply (enqueue_reply_recorded): one statement fewer.
        result = await agent.run_agent(
            rt,
            conversation_id=conversation_id,
            system=system,
            messages=messages,
            latest_text=latest,
            record_last=False,
            **answering,
        )
    except LLMError as exc:
        return await handle_failure(
            rt, context, exc, conversation_id=conversation_id, final_attempt=attempts >= RETRY.max_attempts
        )
    await _queue_reply(rt, result, reply_to_id=reply_to_id, log=log)
    return "queued"


async def _queue_reply(rt: Runtime, result: agent.AgentResult, *, reply_to_id: int, log: dict[str, Any]) -> None:
    """The answer's parts into the outbox with their send jobs, and the answering model call
    recorded in the same statement (enqueue_reply_recorded); an empty answer is recorded and retried."""
    parts = conversation.split_reply(result.text)
    call = result.unrecorded_call
    assert call is not None  # run_agent(record_last=False)
    if not parts:
        await agent.write_llm_call(rt, call)
        logger.warning("model returned no text", extra={"action": "llm_empty", **log})
        raise TransientError("empty model reply")
    async with rt.pool.connection() as conn:
        cur = await conn.execute(queries["enqueue_reply_recorded"], {**call, "parts": parts})
        outbox_ids = [r["outbox_id"] for r in await cur.fetchall()]
    logger.info(
        "reply queued",
        extra={
            "action": "reply_queued",
            "reply_to_id": reply_to_id,
            "outbox_ids": outbox_ids,
            "tools": result.tool_calls,
            "models": result.models,
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
            **log,
        },
    )


async def _knowledge(rt: Runtime, query: str, log: dict[str, Any]) -> list[dict[str, Any]]:
    """Knowledge chunks for the doctor's latest words; none if retrieval fails."""
    if rt.embedder is None or not query.strip():
        return []
    try:
        async with rt.pool.connection() as conn:
            hits = await knowledge.search_knowledge(conn, rt.embedder, query, limit=KNOWLEDGE_HITS)
    except Exception as exc:  # noqa: BLE001 - a reply without retrieved knowledge beats no reply
        logger.warning("knowledge search failed", extra={"action": "knowledge_failed", "error": str(exc), **log})
        return []
    return [{"titulo": h.titulo, "conteudo": h.conteudo} for h in hits]

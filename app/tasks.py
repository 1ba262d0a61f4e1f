"""procrastinate tasks: reply to a conversation, send one outbox row, and
the periodic upkeep. Each task is a few SQL calls around one outside call.
"""

from __future__ import annotations

import logging
from typing import Any

import procrastinate
from procrastinate import JobContext, RetryStrategy

from app import conversation
from app.integrations.evolution import EvolutionError
from app.integrations.llm import LLMError
from app.queries import queries
from app.runtime import Runtime, fault_point

logger = logging.getLogger(__name__)

app = procrastinate.App(connector=procrastinate.PsycopgConnector(), import_paths=["app.tasks"])

SEND_MAX_ATTEMPTS = 6


class TransientError(Exception):
    """A failure worth retrying later (timeouts, 5xx, rate limits)."""


RETRY = RetryStrategy(max_attempts=SEND_MAX_ATTEMPTS, exponential_wait=2, retry_exceptions={TransientError})


def _runtime(context: JobContext) -> Runtime:
    return context.additional_context["runtime"]


async def _one(rt: Runtime, name: str, **params: Any) -> dict[str, Any] | None:
    async with rt.pool.connection() as conn:
        cur = await conn.execute(queries[name], params)
        return await cur.fetchone()


@app.task(name="reply_to_conversation", queue="replies", pass_context=True, retry=RETRY)
async def reply_to_conversation(context: JobContext, conversation_id: int) -> str:
    """Answer the newest unanswered doctor message of a conversation."""
    rt = _runtime(context)
    row = await _one(rt, "reply_context", conversation_id=conversation_id)
    ctx = row["context"]
    log = {"conversation_id": conversation_id, "job_id": context.job.id}
    if ctx["paused"]:
        # resume_julia() re-defers this conversation's reply.
        logger.info("reply held: Julia is paused", extra={"action": "reply_held", **log})
        return "paused"
    reply_to_id = ctx["reply_to_id"]
    if reply_to_id is None:
        logger.info("nothing to answer", extra={"action": "reply_skipped", **log})
        return "nothing_to_answer"
    messages = conversation.history_to_messages(ctx["history"])
    if not messages:
        return "nothing_to_answer"
    system = conversation.build_system(empresa=rt.settings.nome_empresa, cliente=ctx["cliente"])
    try:
        reply = await rt.llm.reply(
            model=rt.settings.llm_model,
            system=system,
            messages=messages,
            max_tokens=rt.settings.llm_max_tokens,
        )
    except LLMError as exc:
        logger.warning(
            "model call failed", extra={"action": "llm_failed", "transient": exc.transient, "error": str(exc), **log}
        )
        if exc.transient:
            raise TransientError(str(exc)) from exc
        raise
    parts = conversation.split_reply(reply.text)
    if not parts:
        logger.warning("model returned no text", extra={"action": "llm_empty", **log})
        raise TransientError("empty model reply")
    async with rt.pool.connection() as conn:
        cur = await conn.execute(
            queries["enqueue_reply"],
            {"conversation_id": conversation_id, "reply_to_id": reply_to_id, "parts": parts},
        )
        outbox_ids = [r["outbox_id"] for r in await cur.fetchall()]
    logger.info(
        "reply queued",
        extra={
            "action": "reply_queued",
            "reply_to_id": reply_to_id,
            "outbox_ids": outbox_ids,
            "model": reply.model,
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            **log,
        },
    )
    return "queued"


@app.task(name="send_outbox", queue="sends", pass_context=True, retry=RETRY)
async def send_outbox(context: JobContext, outbox_id: int) -> str:
    """Send one outbox row through Evolution, after claiming it in SQL."""
    rt = _runtime(context)
    s = rt.settings
    job_id = context.job.id
    log = {"outbox_id": outbox_id, "job_id": job_id}
    claim = await _one(
        rt,
        "claim_outbox",
        outbox_id=outbox_id,
        job_id=job_id,
        app_env=s.app_env,
        project_ref=s.supabase_project_ref,
    )
    if not claim["claimed"]:
        level = logging.WARNING if claim["reason"] == "guard" else logging.INFO
        logger.log(level, "send not claimed", extra={"action": "send_refused", "reason": claim["reason"], **log})
        return claim["reason"]
    fault_point(s, "after_claim")
    await rt.evolution.send_presence(claim["number"], delay_ms=_typing_ms(claim["texto"]))
    try:
        sent = await rt.evolution.send_text(claim["number"], claim["texto"])
    except EvolutionError as exc:
        final = not exc.transient or claim["attempts"] >= SEND_MAX_ATTEMPTS
        await _one(rt, "mark_outbox_failed", outbox_id=outbox_id, job_id=job_id, error=str(exc), final=final)
        logger.warning(
            "send failed",
            extra={"action": "send_failed", "status": exc.status, "final": final, "error": str(exc), **log},
        )
        if final:
            return "failed"
        raise TransientError(str(exc)) from exc
    await _one(rt, "mark_outbox_sent", outbox_id=outbox_id, job_id=job_id, evolution_id=sent.message_id)
    logger.info("message sent", extra={"action": "send_done", "evolution_id": sent.message_id, **log})
    return "sent"


def _typing_ms(text: str) -> int:
    """A short, human-looking typing time for a message."""
    return min(3000, 400 + 15 * len(text))


async def rescue_stalled_jobs(proc_app: procrastinate.App, stalled_seconds: float) -> int:
    """Put back to 'todo' the jobs of workers that stopped sending heartbeats."""
    manager = proc_app.job_manager
    stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_seconds)
    rescued = 0
    for job in stalled:
        try:
            await manager.retry_job(job)
        except procrastinate.exceptions.ProcrastinateException as exc:
            # Usually another worker rescued it first.
            logger.info(
                "stalled job not rescued", extra={"action": "job_rescue_skipped", "job_id": job.id, "error": str(exc)}
            )
            continue
        rescued += 1
        logger.warning("stalled job rescued", extra={"action": "job_rescued", "job_id": job.id, "task": job.task_name})
    return rescued


@app.periodic(cron="* * * * *", periodic_id="rescue")
@app.task(name="periodic_rescue_stalled_jobs", queue="periodic", pass_context=True)
async def periodic_rescue_stalled_jobs(context: JobContext, timestamp: int) -> int:
    """Every minute: rescue stalled jobs and release deferred sends that are due."""
    rt = _runtime(context)
    rescued = await rescue_stalled_jobs(context.app, rt.settings.stalled_worker_seconds)
    released = await _one(rt, "release_held_work", replies=False)
    return rescued + (released["deferred"] if released else 0)

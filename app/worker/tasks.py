"""procrastinate tasks: reply to a conversation, send one outbox row, and
the periodic upkeep. Each task is a few SQL calls around one outside call.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import procrastinate
import psycopg
from procrastinate import JobContext, RetryStrategy
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from app.conversation import agent, knowledge
from app.conversation import prompt as conversation
from app.core.errors import classify
from app.integrations.evolution import EvolutionError
from app.integrations.llm import LLMError
from app.store.queries import queries
from app.worker.runtime import Runtime, fault_point

logger = logging.getLogger(__name__)

app = procrastinate.App(connector=procrastinate.PsycopgConnector(), import_paths=["app.worker.tasks"])

SEND_MAX_ATTEMPTS = 10
OWED_REPLY_MINUTES = 3
KNOWLEDGE_HITS = 4
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
PRUNE_DAYS = 30


class TransientError(Exception):
    """A failure worth retrying later (timeouts, 5xx, rate limits)."""


# Waits grow 2, 4, 8 ... s: about 17 minutes of retries before a job gives up
# (and the periodic sweep re-drives replies still owed after that).
RETRY = RetryStrategy(
    max_attempts=SEND_MAX_ATTEMPTS,
    exponential_wait=2,
    retry_exceptions={TransientError, psycopg.OperationalError, PoolTimeout},
)


def _runtime(context: JobContext) -> Runtime:
    return context.additional_context["runtime"]


async def _one(rt: Runtime, name: str, **params: Any) -> dict[str, Any] | None:
    async with rt.pool.connection() as conn:
        cur = await conn.execute(queries[name], params)
        return await cur.fetchone()


async def _flag(rt: Runtime, key: str) -> bool:
    return bool((await _one(rt, "feature_enabled", key=key))["enabled"])


async def _handle_failure(
    rt: Runtime,
    context: JobContext,
    exc: Exception,
    *,
    conversation_id: int | None = None,
    outbox_id: int | None = None,
    final_attempt: bool = False,
) -> str:
    """Decide what a failure means for the job: retry (raise) or stop here.

    With the `error_classifier` flag on, a permanent failure stops at once;
    off, everything is retried until the attempts run out. A stopped job is
    recorded in job_failures and raised to operators; nothing reaches the doctor.
    """
    kind = classify(exc)
    stop = final_attempt or (kind == "permanent" and await _flag(rt, "error_classifier"))
    log = {"job_id": context.job.id, "conversation_id": conversation_id, "outbox_id": outbox_id}
    if not stop:
        logger.warning(
            "job will retry", extra={"action": "job_retry", "classification": kind, "error": str(exc), **log}
        )
        raise TransientError(str(exc)) from exc
    await _one(
        rt,
        "record_job_failure",
        task_name=context.job.task_name,
        job_id=context.job.id,
        conversation_id=conversation_id,
        outbox_id=outbox_id,
        classification=kind,
        error=str(exc),
    )
    logger.error(
        "job failed for good; operators alerted",
        extra={"action": "operator_alert", "classification": kind, "error": str(exc), **log},
    )
    return "failed"


@app.task(name="reply_to_conversation", queue="replies", pass_context=True, retry=RETRY)
async def reply_to_conversation(context: JobContext, conversation_id: int) -> str:
    """Answer the newest unanswered doctor message of a conversation."""
    rt = _runtime(context)
    ctx = (await _one(rt, "reply_context", conversation_id=conversation_id))["context"]
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
    try:
        result = await agent.run_agent(
            rt, conversation_id=conversation_id, system=system, messages=messages, latest_text=latest
        )
    except LLMError as exc:
        return await _handle_failure(
            rt, context, exc, conversation_id=conversation_id, final_attempt=attempts >= RETRY.max_attempts
        )
    parts = conversation.split_reply(result.text)
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
            "tools": result.tool_calls,
            "models": result.models,
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
            **log,
        },
    )
    return "queued"


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


@app.task(name="send_outbox", queue="sends", pass_context=True, retry=RETRY)
async def send_outbox(context: JobContext, outbox_id: int) -> str:
    """Send one outbox row through Evolution, after claiming it in SQL."""
    rt = _runtime(context)
    s = rt.settings
    job_id = context.job.id
    log = {"outbox_id": outbox_id, "job_id": job_id}
    claim_params = {
        "outbox_id": outbox_id,
        "job_id": job_id,
        "app_env": s.app_env,
        "project_ref": s.supabase_project_ref,
        "now": None,
    }
    claim = await _one(rt, "claim_send_slot", **claim_params)
    if claim["reason"] == "verify_number":
        # First proactive message to this doctor: ask WhatsApp which form of her number exists.
        verified = await _verify_number(rt, context, claim, log)
        if verified != "verified":
            return verified
        claim = await _one(rt, "claim_send_slot", **claim_params)
    if not claim["claimed"]:
        level = logging.WARNING if claim["reason"] in ("guard", "reply_loop_cap") else logging.INFO
        logger.log(
            level,
            "send not claimed",
            extra={"action": "send_refused", "reason": claim["reason"], "next_at": str(claim["next_at"]), **log},
        )
        return claim["reason"]
    fault_point(s, "after_claim")
    # The number the gate chose (NULL before the deployment has number rows: EVOLUTION_INSTANCE).
    instance = claim["instance"]
    log["instance"] = instance
    media = claim["media"]  # an agent's attachment, read by the claim with the row
    await rt.evolution.send_presence(claim["number"], delay_ms=_typing_ms(claim["texto"]), instance=instance)
    try:
        if media:
            sent = await rt.evolution.send_media(
                claim["number"],
                mediatype=media["mediatype"],
                media=media["media"],
                mimetype=media.get("mimetype"),
                caption=media.get("caption"),
                file_name=media.get("file_name"),
                instance=instance,
            )
        else:
            sent = await rt.evolution.send_text(claim["number"], claim["texto"], instance=instance)
    except EvolutionError as exc:
        if exc.not_on_whatsapp and not claim["number"].endswith("@lid"):
            # A burst of these on one number pauses it (SQL decides).
            paused = (await _one(rt, "record_send_problem", outbox_id=outbox_id, kind="not_on_whatsapp"))["paused"]
            if paused:
                logger.error("number paused", extra={"action": "number_auto_paused", **log})
        lid_refused = claim["number"].endswith("@lid") and exc.status == 400
        final = (
            lid_refused
            or claim["attempts"] >= SEND_MAX_ATTEMPTS
            or (classify(exc) == "permanent" and await _flag(rt, "error_classifier"))
        )
        await _one(rt, "mark_outbox_failed", outbox_id=outbox_id, job_id=job_id, error=str(exc), final=final)
        logger.warning(
            "send failed",
            extra={"action": "send_failed", "status": exc.status, "final": final, "error": str(exc), **log},
        )
        if lid_refused and claim["conversation_id"] is not None:
            # Only a LID is known and Evolution cannot reach it: a human takes over.
            await _one(
                rt,
                "transferir_para_humano",
                conversation_id=claim["conversation_id"],
                motivo="WhatsApp recusou o envio para o LID (telefone desconhecido)",
            )
        if final:
            return await _handle_failure(rt, context, exc, outbox_id=outbox_id, final_attempt=True)
        raise TransientError(str(exc)) from exc
    await _one(rt, "mark_outbox_sent", outbox_id=outbox_id, job_id=job_id, evolution_id=sent.message_id)
    logger.info("message sent", extra={"action": "send_done", "evolution_id": sent.message_id, **log})
    return "sent"


async def _verify_number(rt: Runtime, context: JobContext, claim: dict[str, Any], log: dict[str, Any]) -> str:
    """Ask Evolution (onWhatsApp) which form of the doctor's number exists and record it in SQL.

    Returns "verified", or "not_on_whatsapp" (the row failed; the doctor is marked
    and never checked again). Evolution failures are retried like a send.
    """
    try:
        checks = await rt.evolution.check_numbers([claim["number"]])
    except EvolutionError as exc:
        logger.warning("number check failed", extra={"action": "number_check_failed", "error": str(exc), **log})
        if context.job.attempts + 1 >= RETRY.max_attempts:
            return await _handle_failure(rt, context, exc, outbox_id=log["outbox_id"], final_attempt=True)
        raise TransientError(str(exc)) from exc
    check = next((c for c in checks if c.number == claim["number"]), checks[0] if checks else None)
    if check is None:
        raise TransientError(f"Evolution did not answer for {claim['number']}")
    address = (
        await _one(rt, "record_whatsapp_check", cliente_id=claim["cliente_id"], jid=check.jid, exists=check.exists)
    )["address"]
    logger.info(
        "number checked",
        extra={"action": "number_checked", "cliente_id": claim["cliente_id"], "exists": check.exists, **log},
    )
    return "verified" if address else "not_on_whatsapp"


def _typing_ms(text: str) -> int:
    """A short, human-looking typing time for a message."""
    return min(3000, 400 + 15 * len(text))


async def rescue_stalled_jobs(pool: AsyncConnectionPool, stalled_seconds: float) -> int:
    """Put back to 'todo' the jobs of workers that stopped sending heartbeats.

    The rule is SQL's (`rescue_stalled_jobs`): a job waiting under the same
    queueing lock is replaced by the stalled one, so a rescue never collides
    with procrastinate's one-waiting-job index and never leaves a lock jammed.
    """
    async with pool.connection() as conn:
        cur = await conn.execute(queries["rescue_stalled_jobs"], {"seconds": stalled_seconds})
        rescued = await cur.fetchall()
    for job in rescued:
        logger.warning(
            "stalled job rescued",
            extra={
                "action": "job_rescued",
                "job_id": job["job_id"],
                "task": job["task_name"],
                "replaced_job_id": job["replaced_job_id"],
            },
        )
    return len(rescued)


async def _record_run(rt: Runtime, task_name: str, tick: int, result: dict[str, Any]) -> None:
    await _one(rt, "record_periodic_run", task_name=task_name, tick=tick, result=Jsonb(result))
    logger.info("periodic job ran", extra={"action": "periodic_run", "task": task_name, "tick": tick, **result})


@app.periodic(cron="* * * * *", periodic_id="rescue")
@app.task(name="periodic_rescue_stalled_jobs", queue="periodic", pass_context=True)
async def periodic_rescue_stalled_jobs(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Every minute: rescue stalled jobs, release deferred sends that are due, re-drive owed replies."""
    rt = _runtime(context)
    rescued = await rescue_stalled_jobs(rt.pool, rt.settings.stalled_worker_seconds)
    released = (await _one(rt, "release_held_work", replies=False))["deferred"]
    owed = (await _one(rt, "sweep_owed_replies", minutes=OWED_REPLY_MINUTES))["deferred"]
    result = {"rescued": rescued, "released": released, "owed_replies": owed}
    await _record_run(rt, "periodic_rescue_stalled_jobs", timestamp, result)
    return result


@app.periodic(cron="* * * * *", periodic_id="dispatch")
@app.task(name="periodic_dispatch_outreach", queue="periodic", pass_context=True)
async def periodic_dispatch_outreach(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Every minute: let queued campaign and follow-up messages trickle out, within the limits."""
    rt = _runtime(context)
    async with rt.pool.connection() as conn:
        cur = await conn.execute(queries["dispatch_outreach"], {"now": None})
        dispatched = len(await cur.fetchall())
    result = {"dispatched": dispatched}
    await _record_run(rt, "periodic_dispatch_outreach", timestamp, result)
    return result


@app.periodic(cron="*/15 * * * *", periodic_id="follow_ups")
@app.task(name="periodic_follow_ups", queue="periodic", pass_context=True)
async def periodic_follow_ups(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Every 15 minutes: one follow-up for doctors who showed interest and went silent."""
    rt = _runtime(context)
    queued = (await _one(rt, "queue_follow_ups", hours=rt.settings.follow_up_horas))["queued"]
    result = {"queued": queued}
    await _record_run(rt, "periodic_follow_ups", timestamp, result)
    return result


@app.periodic(cron="7 * * * *", periodic_id="touches")
@app.task(name="periodic_reconcile_touches", queue="periodic", pass_context=True)
async def periodic_reconcile_touches(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Hourly: recompute each doctor's last touch and repair conversation metrics."""
    rt = _runtime(context)
    touches = (await _one(rt, "reconcile_touches"))["updated"]
    metrics = (await _one(rt, "rollup_metricas_conversa", days=1))["updated"]
    result = {"touches": touches, "metricas": metrics}
    await _record_run(rt, "periodic_reconcile_touches", timestamp, result)
    return result


@app.periodic(cron="30 6 * * *", periodic_id="prune")
@app.task(name="periodic_prune", queue="periodic", pass_context=True)
async def periodic_prune(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Daily (03:30 in Sao Paulo): drop finished jobs, archived queue messages, old counters."""
    rt = _runtime(context)
    await context.app.job_manager.delete_old_jobs(
        nb_hours=PRUNE_DAYS * 24, include_failed=False, include_cancelled=True
    )
    pruned = (await _one(rt, "prune_history", days=PRUNE_DAYS))["pruned"]
    await _record_run(rt, "periodic_prune", timestamp, pruned)
    return pruned


@app.periodic(cron="10 23 * * *", periodic_id="summary")
@app.task(name="periodic_daily_summary", queue="periodic", pass_context=True)
async def periodic_daily_summary(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Daily (20:10 in Sao Paulo): the day's numbers, to operators."""
    rt = _runtime(context)
    summary = (await _one(rt, "daily_summary"))["summary"]
    # Slack when configured (the notification job logs otherwise); once per day.
    await _one(
        rt, "notify_humans", kind="daily_summary", payload=Jsonb(summary), dedupe_key=f"daily_summary:{summary['dia']}"
    )
    logger.info("daily summary", extra={"action": "daily_summary", **summary})
    await _record_run(rt, "periodic_daily_summary", timestamp, summary)
    return summary


# ----------------------------------------------------------------------------
# Humans in the loop (issue 7): Chatwoot mirror, operator notifications.
# Their own 'humans' queue, so an outage never delays a reply or a send.
# ----------------------------------------------------------------------------

HUMANS_RETRY = RetryStrategy(max_attempts=6, exponential_wait=2, retry_exceptions={TransientError})


@app.task(name="sync_chatwoot_conversation", queue="humans", pass_context=True, retry=HUMANS_RETRY)
async def sync_chatwoot_conversation(context: JobContext, conversation_id: int) -> str:
    """Mirror a conversation's new messages, handoff and hand-back to Chatwoot."""
    from app.integrations.chatwoot import ChatwootClient, ChatwootError, chatwoot_configured
    from app.worker import chatwoot_sync  # kept local: this block is appended to the task module

    rt = _runtime(context)
    log = {"conversation_id": conversation_id, "job_id": context.job.id}
    if not chatwoot_configured(rt.settings):
        skipped = (await _one(rt, "skip_chatwoot_sync", conversation_id=conversation_id))["skipped"]
        logger.debug("chatwoot not configured", extra={"action": "chatwoot_skipped", "skipped": skipped, **log})
        return "unconfigured"
    try:
        async with ChatwootClient.from_settings(rt.settings) as client:
            counts = await chatwoot_sync.sync_conversation(
                rt.pool, client, conversation_id, team_id=rt.settings.chatwoot_handoff_team_id
            )
    except ChatwootError as exc:
        await _one(rt, "record_chatwoot_sync_error", conversation_id=conversation_id, error=str(exc))
        if context.job.attempts + 1 >= HUMANS_RETRY.max_attempts:
            # What waits stays pending: periodic_humans_sweep defers a new job later.
            logger.error("chatwoot mirror failed", extra={"action": "chatwoot_sync_failed", "error": str(exc), **log})
            return "failed"
        logger.warning("chatwoot mirror will retry", extra={"action": "chatwoot_sync_retry", "error": str(exc), **log})
        raise TransientError(str(exc)) from exc
    logger.info("chatwoot mirrored", extra={"action": "chatwoot_synced", **counts, **log})
    return "synced"


@app.task(name="send_notification", queue="humans", pass_context=True, retry=HUMANS_RETRY)
async def send_notification(context: JobContext, notification_id: int) -> str:
    """Post one operator notification to Slack (critical ones also alert the manager)."""
    from app.integrations.slack import SlackClient, SlackError
    from app.worker.notifications import deliver_notification

    rt = _runtime(context)
    log = {"notification_id": notification_id, "job_id": context.job.id}
    try:
        async with SlackClient.from_settings(rt.settings) as slack:
            result = await deliver_notification(rt.pool, rt.settings, slack, notification_id)
    except SlackError as exc:
        if not exc.transient or context.job.attempts + 1 >= HUMANS_RETRY.max_attempts:
            await _one(rt, "finish_notification", notification_id=notification_id, state="failed", error=str(exc))
            logger.error("notification failed", extra={"action": "notification_failed", "error": str(exc), **log})
            return "failed"
        logger.warning("notification will retry", extra={"action": "notification_retry", "error": str(exc), **log})
        raise TransientError(str(exc)) from exc
    logger.info("notification done", extra={"action": "notification_" + result, **log})
    return result


@app.periodic(cron="*/5 * * * *", periodic_id="humans_sweep")
@app.task(name="periodic_humans_sweep", queue="periodic", pass_context=True)
async def periodic_humans_sweep(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Every 5 minutes: re-defer mirror and notification jobs whose retries ran out."""
    rt = _runtime(context)
    result = {"deferred": (await _one(rt, "redefer_humans_work"))["deferred"]}
    await _record_run(rt, "periodic_humans_sweep", timestamp, result)
    return result

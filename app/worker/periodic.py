"""Periodic upkeep (procrastinate periodic tasks on the 'periodic' queue):
rescue of jobs left by dead workers, outreach dispatch, follow-ups, touch
reconciliation, pruning and the daily summary. Each records its run.
"""

from __future__ import annotations

import logging
from typing import Any

from procrastinate import JobContext
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.store.pool import fetch_one
from app.store.queries import queries
from app.worker.jobs import app, runtime_of
from app.worker.runtime import Runtime

logger = logging.getLogger(__name__)

OWED_REPLY_MINUTES = 3
PRUNE_DAYS = 30


async def rescue_stalled_jobs(
    pool: AsyncConnectionPool, stalled_seconds: float, *, except_worker: int | None = None
) -> int:
    """Put back to 'todo' the jobs of workers that stopped sending heartbeats.

    The rule is SQL's (`rescue_stalled_jobs`): a job waiting under the same
    queueing lock is replaced by the stalled one, so a rescue never collides
    with procrastinate's one-waiting-job index and never leaves a lock jammed.
    `except_worker` is the asking process's own procrastinate worker id: its
    jobs are running, whatever its heartbeat says.
    """
    async with pool.connection() as conn:
        cur = await conn.execute(
            queries["rescue_stalled_jobs"], {"seconds": stalled_seconds, "except_worker": except_worker}
        )
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


async def record_run(rt: Runtime, task_name: str, tick: int, result: dict[str, Any]) -> None:
    """Record one periodic run (its result) in SQL and the log."""
    await fetch_one(rt.pool, "record_periodic_run", task_name=task_name, tick=tick, result=Jsonb(result))
    logger.info("periodic job ran", extra={"action": "periodic_run", "task": task_name, "tick": tick, **result})


@app.periodic(cron="* * * * *", periodic_id="rescue")
@app.task(name="periodic_rescue_stalled_jobs", queue="periodic", pass_context=True)
async def periodic_rescue_stalled_jobs(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Every minute: rescue stalled jobs, release deferred sends that are due, re-drive owed replies."""
    rt = runtime_of(context)
    # Not the jobs of the worker running this one: they run beside it.
    own = context.job.worker_id
    rescued = await rescue_stalled_jobs(rt.pool, rt.settings.stalled_worker_seconds, except_worker=own)
    released = (await fetch_one(rt.pool, "release_held_work", replies=False))["deferred"]
    owed = (await fetch_one(rt.pool, "sweep_owed_replies", minutes=OWED_REPLY_MINUTES, except_worker=own))["deferred"]
    result = {"rescued": rescued, "released": released, "owed_replies": owed}
    await record_run(rt, "periodic_rescue_stalled_jobs", timestamp, result)
    return result


@app.periodic(cron="* * * * *", periodic_id="dispatch")
@app.task(name="periodic_dispatch_outreach", queue="periodic", pass_context=True)
async def periodic_dispatch_outreach(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Every minute: let queued campaign and follow-up messages trickle out, within the limits."""
    rt = runtime_of(context)
    async with rt.pool.connection() as conn:
        cur = await conn.execute(queries["dispatch_outreach"], {"now": None})
        dispatched = len(await cur.fetchall())
    result = {"dispatched": dispatched}
    await record_run(rt, "periodic_dispatch_outreach", timestamp, result)
    return result


@app.periodic(cron="*/15 * * * *", periodic_id="follow_ups")
@app.task(name="periodic_follow_ups", queue="periodic", pass_context=True)
async def periodic_follow_ups(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Every 15 minutes: one follow-up for doctors who showed interest and went silent."""
    rt = runtime_of(context)
    queued = (await fetch_one(rt.pool, "queue_follow_ups", hours=rt.settings.follow_up_horas))["queued"]
    result = {"queued": queued}
    await record_run(rt, "periodic_follow_ups", timestamp, result)
    return result


@app.periodic(cron="7 * * * *", periodic_id="touches")
@app.task(name="periodic_reconcile_touches", queue="periodic", pass_context=True)
async def periodic_reconcile_touches(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Hourly: recompute each doctor's last touch and repair conversation metrics."""
    rt = runtime_of(context)
    touches = (await fetch_one(rt.pool, "reconcile_touches"))["updated"]
    metrics = (await fetch_one(rt.pool, "rollup_metricas_conversa", days=1))["updated"]
    result = {"touches": touches, "metricas": metrics}
    await record_run(rt, "periodic_reconcile_touches", timestamp, result)
    return result


@app.periodic(cron="30 6 * * *", periodic_id="prune")
@app.task(name="periodic_prune", queue="periodic", pass_context=True)
async def periodic_prune(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Daily (03:30 in Sao Paulo): drop finished jobs, archived queue messages, old counters."""
    rt = runtime_of(context)
    await context.app.job_manager.delete_old_jobs(
        nb_hours=PRUNE_DAYS * 24, include_failed=False, include_cancelled=True
    )
    pruned = (await fetch_one(rt.pool, "prune_history", days=PRUNE_DAYS))["pruned"]
    pruned["llm_calls"] = (await fetch_one(rt.pool, "prune_llm_calls", days=PRUNE_DAYS))["pruned"]
    await record_run(rt, "periodic_prune", timestamp, pruned)
    return pruned


@app.periodic(cron="10 23 * * *", periodic_id="summary")
@app.task(name="periodic_daily_summary", queue="periodic", pass_context=True)
async def periodic_daily_summary(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Daily (20:10 in Sao Paulo): the day's numbers, to operators."""
    rt = runtime_of(context)
    summary = (await fetch_one(rt.pool, "daily_summary"))["summary"]
    # Slack when configured (the notification job logs otherwise); once per day.
    await fetch_one(
        rt.pool,
        "notify_humans",
        kind="daily_summary",
        payload=Jsonb(summary),
        dedupe_key=f"daily_summary:{summary['dia']}",
    )
    logger.info("daily summary", extra={"action": "daily_summary", **summary})
    await record_run(rt, "periodic_daily_summary", timestamp, summary)
    return summary

"""The procrastinate app every job family registers on, and what the jobs
share: retry strategies, the runtime a job reads its pool and clients from,
feature flags, and the one rule for what a failure means (`handle_failure`).

Job families: app.worker.replies, .sends, .periodic, .humans.
"""

from __future__ import annotations

import logging

import procrastinate
import psycopg
from procrastinate import JobContext, RetryStrategy
from psycopg_pool import PoolTimeout

from app.core.errors import TransientError
from app.store.errors import classify
from app.store.pool import fetch_one
from app.worker.runtime import Runtime

logger = logging.getLogger(__name__)

JOB_MODULES = ["app.worker.replies", "app.worker.sends", "app.worker.periodic", "app.worker.humans"]
app = procrastinate.App(connector=procrastinate.PsycopgConnector(), import_paths=JOB_MODULES)

SEND_MAX_ATTEMPTS = 10

# Waits grow 2, 4, 8 ... s: about 17 minutes of retries before a job gives up
# (and the periodic sweep re-drives replies still owed after that).
RETRY = RetryStrategy(
    max_attempts=SEND_MAX_ATTEMPTS,
    exponential_wait=2,
    retry_exceptions={TransientError, psycopg.OperationalError, PoolTimeout},
)
# Chatwoot mirror and notifications: their own 'humans' queue, so an outage
# never delays a reply or a send.
HUMANS_RETRY = RetryStrategy(max_attempts=6, exponential_wait=2, retry_exceptions={TransientError})


def runtime_of(context: JobContext) -> Runtime:
    """The process's runtime (pool, settings, clients), handed to every job."""
    return context.additional_context["runtime"]


async def flag(rt: Runtime, key: str) -> bool:
    """Whether feature flag `key` is on (read from the database each time)."""
    return bool((await fetch_one(rt.pool, "feature_enabled", key=key))["enabled"])


async def handle_failure(
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
    stop = final_attempt or (kind == "permanent" and await flag(rt, "error_classifier"))
    log = {"job_id": context.job.id, "conversation_id": conversation_id, "outbox_id": outbox_id}
    if not stop:
        logger.warning(
            "job will retry", extra={"action": "job_retry", "classification": kind, "error": str(exc), **log}
        )
        raise TransientError(str(exc)) from exc
    await fetch_one(
        rt.pool,
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

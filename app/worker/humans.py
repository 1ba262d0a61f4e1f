"""Humans in the loop: mirror a conversation to Chatwoot, post operator
notifications to Slack (critical ones also alert the manager), and re-defer
both when their retries ran out.
"""

from __future__ import annotations

import logging
from typing import Any

from procrastinate import JobContext

from app.core.errors import TransientError
from app.integrations.chatwoot import ChatwootClient, ChatwootError, chatwoot_configured
from app.integrations.slack import SlackClient, SlackError
from app.store.pool import fetch_one
from app.worker import chatwoot_sync
from app.worker.jobs import HUMANS_RETRY, app, runtime_of
from app.worker.notifications import deliver_notification
from app.worker.periodic import record_run

logger = logging.getLogger(__name__)


@app.task(name="sync_chatwoot_conversation", queue="humans", pass_context=True, retry=HUMANS_RETRY)
async def sync_chatwoot_conversation(context: JobContext, conversation_id: int) -> str:
    """Mirror a conversation's new messages, handoff and hand-back to Chatwoot."""
    rt = runtime_of(context)
    log = {"conversation_id": conversation_id, "job_id": context.job.id}
    if not chatwoot_configured(rt.settings):
        skipped = (await fetch_one(rt.pool, "skip_chatwoot_sync", conversation_id=conversation_id))["skipped"]
        logger.debug("chatwoot not configured", extra={"action": "chatwoot_skipped", "skipped": skipped, **log})
        return "unconfigured"
    try:
        async with ChatwootClient.from_settings(rt.settings) as client:
            counts = await chatwoot_sync.sync_conversation(
                rt.pool, client, conversation_id, team_id=rt.settings.chatwoot_handoff_team_id
            )
    except ChatwootError as exc:
        await fetch_one(rt.pool, "record_chatwoot_sync_error", conversation_id=conversation_id, error=str(exc))
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
    rt = runtime_of(context)
    log = {"notification_id": notification_id, "job_id": context.job.id}
    try:
        async with SlackClient.from_settings(rt.settings) as slack:
            result = await deliver_notification(rt.pool, rt.settings, slack, notification_id)
    except SlackError as exc:
        if not exc.transient or context.job.attempts + 1 >= HUMANS_RETRY.max_attempts:
            await fetch_one(
                rt.pool, "finish_notification", notification_id=notification_id, state="failed", error=str(exc)
            )
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
    rt = runtime_of(context)
    result = {"deferred": (await fetch_one(rt.pool, "redefer_humans_work"))["deferred"]}
    await record_run(rt, "periodic_humans_sweep", timestamp, result)
    return result

"""Send jobs: one outbox row through Evolution, after the send gate
(`claim_send_slot`) chose the number and allowed it; the first proactive
message to a doctor first asks WhatsApp which form of her number exists.
"""

from __future__ import annotations

import logging
from typing import Any

from procrastinate import JobContext

from app.core.errors import TransientError
from app.integrations.evolution import EvolutionError, SentMessage
from app.store.errors import classify
from app.store.pool import fetch_one
from app.worker.jobs import RETRY, SEND_MAX_ATTEMPTS, app, flag, handle_failure, runtime_of
from app.worker.reconcile import reconcile_earlier_send
from app.worker.runtime import Runtime, fault_point

logger = logging.getLogger(__name__)


@app.task(name="send_outbox", queue="sends", pass_context=True, retry=RETRY)
async def send_outbox(context: JobContext, outbox_id: int) -> str:
    """Send one outbox row through Evolution, after claiming it in SQL."""
    rt = runtime_of(context)
    job_id = context.job.id
    log: dict[str, Any] = {"outbox_id": outbox_id, "job_id": job_id}
    claim = await _claim(rt, context, outbox_id, log)
    if not claim["claimed"]:
        return claim["reason"]
    # The claim committed without waiting for its flush: it must be durable before anything goes out
    # (a claim lost in a crash after a send would let the row, and its slot, be taken again).
    await fetch_one(rt.pool, "await_durable")
    fault_point(rt.settings, "after_claim")
    # The number the gate chose (NULL before the deployment has number rows: EVOLUTION_INSTANCE).
    log["instance"] = claim["instance"]
    try:
        # A re-attempt: an earlier one may have gone out before its worker died.
        if await reconcile_earlier_send(rt, claim, outbox_id=outbox_id, job_id=job_id, log=log):
            return "sent"
        sent = await _send(rt, claim)
    except EvolutionError as exc:
        return await _send_failed(rt, context, claim, exc, outbox_id=outbox_id, log=log)
    fault_point(rt.settings, "after_send")
    await fetch_one(rt.pool, "mark_outbox_sent", outbox_id=outbox_id, job_id=job_id, evolution_id=sent.message_id)
    logger.info("message sent", extra={"action": "send_done", "evolution_id": sent.message_id, **log})
    return "sent"


async def _claim(rt: Runtime, context: JobContext, outbox_id: int, log: dict[str, Any]) -> dict[str, Any]:
    """The send gate's answer for this row (`claimed`, else `reason`); verifies a new number first."""
    s = rt.settings
    params = {
        "outbox_id": outbox_id,
        "job_id": context.job.id,
        "app_env": s.app_env,
        "project_ref": s.supabase_project_ref,
        "now": None,
    }
    claim = await fetch_one(rt.pool, "claim_send_slot", **params)
    if claim["reason"] == "verify_number":
        # First proactive message to this doctor: ask WhatsApp which form of her number exists.
        verified = await _verify_number(rt, context, claim, log)
        if verified != "verified":
            return {"claimed": False, "reason": verified}
        claim = await fetch_one(rt.pool, "claim_send_slot", **params)
    if not claim["claimed"]:
        level = logging.WARNING if claim["reason"] in ("guard", "reply_loop_cap") else logging.INFO
        logger.log(
            level,
            "send not claimed",
            extra={"action": "send_refused", "reason": claim["reason"], "next_at": str(claim["next_at"]), **log},
        )
    return claim


async def _send(rt: Runtime, claim: dict[str, Any]) -> SentMessage:
    """Typing, then the text or the agent's attachment (read by the claim with the row):
    one request, Evolution shows "typing" for `delay` before it sends."""
    number, instance, media = claim["number"], claim["instance"], claim["media"]
    typing = _typing_ms(claim["texto"])
    if not media:
        return await rt.evolution.send_text(number, claim["texto"], delay_ms=typing, instance=instance)
    return await rt.evolution.send_media(
        number,
        delay_ms=typing,
        mediatype=media["mediatype"],
        media=media["media"],
        mimetype=media.get("mimetype"),
        caption=media.get("caption"),
        file_name=media.get("file_name"),
        instance=instance,
    )


async def _send_failed(
    rt: Runtime, context: JobContext, claim: dict[str, Any], exc: EvolutionError, *, outbox_id: int, log: dict
) -> str:
    """Record a failed send: retried (raises), failed for good, or handed to a human (a LID nobody can reach)."""
    number = claim["number"]
    if exc.not_on_whatsapp and not number.endswith("@lid"):
        # A burst of these on one number pauses it (SQL decides).
        problem = await fetch_one(rt.pool, "record_send_problem", outbox_id=outbox_id, kind="not_on_whatsapp")
        if problem["paused"]:
            logger.error("number paused", extra={"action": "number_auto_paused", **log})
    lid_refused = number.endswith("@lid") and exc.status == 400
    final = (
        lid_refused
        or claim["attempts"] >= SEND_MAX_ATTEMPTS
        or (classify(exc) == "permanent" and await flag(rt, "error_classifier"))
    )
    job_id = context.job.id
    await fetch_one(rt.pool, "mark_outbox_failed", outbox_id=outbox_id, job_id=job_id, error=str(exc), final=final)
    logger.warning(
        "send failed", extra={"action": "send_failed", "status": exc.status, "final": final, "error": str(exc), **log}
    )
    if lid_refused and claim["conversation_id"] is not None:
        # Only a LID is known and Evolution cannot reach it: a human takes over.
        motivo = "WhatsApp recusou o envio para o LID (telefone desconhecido)"
        await fetch_one(rt.pool, "transferir_para_humano", conversation_id=claim["conversation_id"], motivo=motivo)
    if final:
        return await handle_failure(rt, context, exc, outbox_id=outbox_id, final_attempt=True)
    raise TransientError(str(exc)) from exc


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
            return await handle_failure(rt, context, exc, outbox_id=log["outbox_id"], final_attempt=True)
        raise TransientError(str(exc)) from exc
    check = next((c for c in checks if c.number == claim["number"]), checks[0] if checks else None)
    if check is None:
        raise TransientError(f"Evolution did not answer for {claim['number']}")
    address = (
        await fetch_one(
            rt.pool, "record_whatsapp_check", cliente_id=claim["cliente_id"], jid=check.jid, exists=check.exists
        )
    )["address"]
    logger.info(
        "number checked",
        extra={"action": "number_checked", "cliente_id": claim["cliente_id"], "exists": check.exists, **log},
    )
    return "verified" if address else "not_on_whatsapp"


def _typing_ms(text: str) -> int:
    """A short, human-looking typing time for a message."""
    return min(3000, 400 + 15 * len(text))

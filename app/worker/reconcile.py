"""Re-attempted sends: before a send job sends an outbox row again, it asks
Evolution whether an earlier attempt already went out (a worker killed after
Evolution accepted the text, before `mark_outbox_sent` committed).

Evolution lists what it sent (findMessages); SQL decides which listed message
is the row's and records it (`reconcile_send`, db/delivery.sql).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from psycopg.types.json import Jsonb

from app.integrations.evolution import EvolutionError
from app.store.pool import fetch_one
from app.worker.runtime import Runtime

logger = logging.getLogger(__name__)


async def reconcile_earlier_send(
    rt: Runtime, claim: dict[str, Any], *, outbox_id: int, job_id: int, log: dict[str, Any]
) -> str | None:
    """The Evolution id an earlier attempt of this claimed row went out with, now
    recorded (the row is sent: send nothing), or None (send it).

    Evolution is asked only for a re-attempt (the claim's `attempts` > 1). When it
    cannot list messages for good (a 4xx: an older Evolution, a refused filter) the
    row is sent again, as before this check. Raises EvolutionError when the failure
    is transient, so the send is retried like a failed send.
    """
    if claim["attempts"] <= 1:
        return None
    try:
        found = await rt.evolution.find_sent_messages(claim["number"], instance=claim["instance"])
    except EvolutionError as exc:
        if exc.transient:
            raise
        logger.warning(
            "could not ask Evolution whether an earlier attempt went; sending again",
            extra={"action": "send_reconcile_unavailable", "status": exc.status, "error": str(exc), **log},
        )
        return None
    params = {"outbox_id": outbox_id, "job_id": job_id, "found": Jsonb([asdict(m) for m in found])}
    evolution_id = (await fetch_one(rt.pool, "reconcile_send", **params))["evolution_id"]
    if evolution_id is None:
        logger.info(
            "no earlier attempt went out; sending",
            extra={"action": "send_reconcile_none", "attempts": claim["attempts"], "listed": len(found), **log},
        )
    else:
        logger.warning(
            "an earlier attempt already went out; recorded as sent, not sent again",
            extra={"action": "send_reconciled", "attempts": claim["attempts"], "evolution_id": evolution_id, **log},
        )
    return evolution_id

"""One place that decides whether a failure is worth retrying.

Transient: timeouts, connection errors, 5xx, 408/409/429 from Anthropic or
Evolution. Permanent: the rest (a 4xx means the request itself is wrong, or
the contact cannot be reached). With the `error_classifier` flag on,
permanent failures end the job at once with a recorded reason; off, every
failure is retried with backoff until the attempts run out.
"""

from __future__ import annotations

import psycopg

from app.integrations.evolution import EvolutionError
from app.integrations.llm import LLMError


def classify(exc: BaseException) -> str:
    """'transient' or 'permanent'."""
    if isinstance(exc, LLMError | EvolutionError):
        return "transient" if exc.transient else "permanent"
    if isinstance(exc, psycopg.OperationalError | TimeoutError | ConnectionError):
        return "transient"
    return "permanent"

"""The root of every error Julia raises, and the one rule that decides
whether a failure is worth retrying.

Each subclass's docstring is its message when it is raised without one, so
`raise NotFound()` still says something useful; most carry a specific
message (`NotFound("conversation 42 not found")`).

Transient (worth a retry): timeouts, connection errors, 5xx, 408/409/429
from Anthropic or Evolution — a `JuliaError` says so with `transient`.
Permanent: the rest (a 4xx means the request itself is wrong, or the
contact cannot be reached). With the `error_classifier` flag on, permanent
failures end the job at once with a recorded reason; off, every failure is
retried with backoff until the attempts run out.
"""

from __future__ import annotations

import psycopg


class JuliaError(Exception):
    """Julia could not do what was asked."""

    #: Whether the same call may work later (a retry is worth it).
    transient: bool = False

    def __str__(self) -> str:
        return super().__str__() or (type(self).__doc__ or type(self).__name__).strip().splitlines()[0]


class InvalidInput(JuliaError):
    """The input is invalid (SQLSTATE JU400)."""


class NotFound(JuliaError):
    """A named thing was not found (SQLSTATE JU404)."""


class Conflict(JuliaError):
    """The current state does not allow this (SQLSTATE JU409)."""


class Unauthorized(JuliaError):
    """The request carries no valid credential."""


class BadSignature(Unauthorized):
    """The webhook's signature is missing, stale or wrong."""


class InvalidEvent(InvalidInput):
    """The webhook body is not an event Julia understands."""


class TransientError(JuliaError):
    """A failure worth retrying later (timeouts, 5xx, rate limits)."""

    transient = True


def classify(exc: BaseException) -> str:
    """'transient' or 'permanent'."""
    if isinstance(exc, JuliaError):
        return "transient" if exc.transient else "permanent"
    if isinstance(exc, psycopg.OperationalError | TimeoutError | ConnectionError):
        return "transient"
    return "permanent"

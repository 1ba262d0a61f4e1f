"""The root of every error Julia raises.

Each subclass's docstring is its message when it is raised without one, so
`raise NotFound()` still says something useful; most carry a specific
message (`NotFound("conversation 42 not found")`).

A `JuliaError` says with `transient` whether the same call may work later
(app.store.errors.classify is the one rule jobs use).
"""

from __future__ import annotations


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

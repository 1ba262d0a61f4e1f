"""Driver errors, translated in one place.

`wrap_db_errors()` turns what Julia's SQL functions raise on purpose into
domain errors: each `RAISE ... USING ERRCODE` in db/ uses one of three
SQLSTATEs — JU400 `InvalidInput`, JU404 `NotFound`, JU409 `Conflict` — and
the message is the SQL message. Everything else passes through unchanged
(connection errors stay psycopg's, so retries still see them).

Pure logic (no I/O) also tells a database that is away from one that refuses
us for good: the worker waits out the first kind (Postgres restarting, a
failover, a network blip) and exits non-zero on the second (wrong
credentials, a missing database or schema, a bug), so the platform's
ON_FAILURE restart policy and the operators see it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg_pool import PoolTimeout

from app.core.errors import Conflict, InvalidInput, JuliaError, NotFound

# SQLSTATEs that mean "the server is going away or not there yet".
_TRANSIENT_STATES = frozenset({"57P01", "57P02", "57P03", "53300", "40001", "40P01"})
_TRANSIENT_CLASSES = ("08",)  # connection exceptions
# What libpq says (without a SQLSTATE) when a connection is refused for good.
_PERMANENT_CONNECT_TEXT = (
    "password authentication failed",
    "does not exist",  # database / role
    "no pg_hba.conf entry",
    "authentication failed",
)


class PermanentDatabaseError(JuliaError):
    """The database refuses this process for good; restarting will not help."""


# SQLSTATE -> domain error. Every RAISE in db/ names one of these
# (tests/unit/store/test_db_errors.py checks it); any other error, a bare
# RAISE's P0001 from someone else's SQL included, passes through.
DOMAIN_ERRORS: dict[str, type[JuliaError]] = {
    "JU400": InvalidInput,
    "JU404": NotFound,
    "JU409": Conflict,
}


def domain_error(exc: psycopg.Error) -> JuliaError | None:
    """The domain error a SQL function meant by `exc`, or None."""
    kind = DOMAIN_ERRORS.get(exc.sqlstate or "")
    if kind is None:
        return None
    return kind(exc.diag.message_primary or str(exc).splitlines()[0])


@contextlib.contextmanager
def wrap_db_errors() -> Iterator[None]:
    """Raise Julia's SQL errors as `InvalidInput`, `NotFound` or `Conflict`."""
    try:
        yield
    except psycopg.Error as exc:
        if (domain := domain_error(exc)) is None:
            raise
        raise domain from exc


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_connection_error(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) means the database is unreachable
    or restarting, and the same call will work once it is back."""
    for err in _chain(exc):
        if isinstance(err, PoolTimeout | psycopg.InterfaceError):
            return True
        if isinstance(err, ConnectionError | TimeoutError):
            return True
        if isinstance(err, psycopg.Error):
            state = err.sqlstate
            if state is None:
                text = str(err).lower()
                return isinstance(err, psycopg.OperationalError) and not any(t in text for t in _PERMANENT_CONNECT_TEXT)
            return state in _TRANSIENT_STATES or state.startswith(_TRANSIENT_CLASSES)
    return False


def describe(exc: BaseException) -> str:
    """One line naming the error, without connection secrets (libpq never prints passwords)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def classify(exc: BaseException) -> str:
    """'transient' or 'permanent': the one rule for whether a failure is worth retrying.

    Transient: timeouts, connection errors, 5xx, 408/409/429 from Anthropic or
    Evolution (a `JuliaError` says so with `transient`). Permanent: the rest (a
    4xx means the request itself is wrong, or the contact cannot be reached).
    With the `error_classifier` flag on, permanent failures end the job at once
    with a recorded reason; off, every failure is retried with backoff until the
    attempts run out.
    """
    if isinstance(exc, JuliaError):
        return "transient" if exc.transient else "permanent"
    if isinstance(exc, psycopg.OperationalError | TimeoutError | ConnectionError):
        return "transient"
    return "permanent"

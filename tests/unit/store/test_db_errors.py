"""Which database errors the worker waits out, and which stop it."""

from __future__ import annotations

import psycopg
import pytest
from procrastinate.exceptions import ConnectorException
from psycopg import errors
from psycopg_pool import PoolTimeout

from app.store.errors import describe, is_connection_error


def wrapped(cause: BaseException) -> ConnectorException:
    """What procrastinate raises: its ConnectorException from the driver's error."""
    try:
        raise ConnectorException from cause
    except ConnectorException as exc:
        return exc


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError('connection failed: connection to server on socket "/tmp/.s.PGSQL.5432" failed'),
        errors.AdminShutdown("terminating connection due to administrator command"),
        errors.CannotConnectNow("the database system is starting up"),
        errors.TooManyConnections("sorry, too many clients already"),
        PoolTimeout("couldn't get a connection after 5.00 sec"),
        psycopg.InterfaceError("the connection is closed"),
        wrapped(psycopg.OperationalError("server closed the connection unexpectedly")),
    ],
    ids=["refused", "admin-shutdown", "starting-up", "too-many", "pool-timeout", "closed", "procrastinate-wrapped"],
)
def test_a_database_that_is_away_is_waited_out(exc):
    assert is_connection_error(exc)


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError('connection failed: FATAL:  database "julia" does not exist'),
        psycopg.OperationalError('connection failed: FATAL:  password authentication failed for user "julia"'),
        errors.UndefinedTable('relation "procrastinate_jobs" does not exist'),
        errors.ObjectNotInPrerequisiteState('record "_waiting" is not assigned yet'),
        wrapped(errors.UndefinedFunction("function public.rescue_stalled_jobs(interval) does not exist")),
        RuntimeError("a bug"),
    ],
    ids=["no-database", "bad-password", "no-table", "plpgsql-bug", "procrastinate-wrapped", "bug"],
)
def test_a_refusal_or_a_bug_is_permanent(exc):
    assert not is_connection_error(exc)


def test_describe_is_one_line():
    assert describe(psycopg.OperationalError("line one\nline two")) == "OperationalError: line one"

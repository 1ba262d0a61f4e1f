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


def raise_statements(text: str) -> list[str]:
    """Each `RAISE EXCEPTION ...;` statement of a SQL file (quotes respected)."""
    statements = []
    start = text.find("RAISE EXCEPTION")
    while start != -1:
        i, quoted = start, False
        while text[i] != ";" or quoted:
            if text[i] == "'":
                quoted = not quoted
            i += 1
        statements.append(text[start:i])
        start = text.find("RAISE EXCEPTION", i)
    return statements


def test_every_raise_in_db_names_its_sqlstate():
    from app.store.schema import DB_DIR

    codes = {}
    for path in sorted(DB_DIR.glob("*.sql")):
        for statement in raise_statements(path.read_text(encoding="utf-8")):
            code = statement.partition("ERRCODE = '")[2][:5]
            codes.setdefault(code, []).append(f"{path.name}: {statement.splitlines()[0].strip()}")
    # JU001 is the send gate's own signal, caught where it is raised (db/sendslots.sql).
    assert set(codes) <= {"JU400", "JU404", "JU409", "JU001"}, codes.get("", codes)
    assert len(codes["JU404"]) > 10 and len(codes["JU409"]) > 5

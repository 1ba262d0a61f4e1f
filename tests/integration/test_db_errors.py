"""Julia's SQL raises with one of three SQLSTATEs, and wrap_db_errors()
turns each into its domain error, with the SQL message (not its CONTEXT)."""

from __future__ import annotations

import psycopg
import pytest

from app.core.errors import Conflict, InvalidInput, JuliaError, NotFound
from app.store.errors import wrap_db_errors


@pytest.mark.parametrize(("sqlstate", "kind"), [("JU400", InvalidInput), ("JU404", NotFound), ("JU409", Conflict)])
def test_a_raise_with_each_code_becomes_its_domain_error(db, sqlstate, kind):
    with pytest.raises(kind) as raised, wrap_db_errors():
        db.execute(f"DO $$ BEGIN RAISE EXCEPTION 'thing % is wrong', 42 USING ERRCODE = '{sqlstate}'; END $$")
    assert str(raised.value) == "thing 42 is wrong"
    assert isinstance(raised.value, JuliaError)
    assert isinstance(raised.value.__cause__, psycopg.Error)
    assert raised.value.__cause__.sqlstate == sqlstate


def test_julia_functions_raise_with_their_code(db):
    with pytest.raises(NotFound, match=r"^reply_context: conversation -1 not found$"), wrap_db_errors():
        db.execute("SELECT reply_context(-1)")
    with pytest.raises(InvalidInput, match=r"^a motivo \(reason\) is required to set Julia pausado$"), wrap_db_errors():
        db.execute("SELECT pause_julia('', 'test')")
    db.execute("SELECT create_campaign('x', 'Oi', '{}', NULL, NULL) AS id")
    campaign = db.execute("SELECT id FROM campanhas WHERE nome = 'x'").fetchone()["id"]
    with pytest.raises(Conflict, match="is not active"), wrap_db_errors():
        db.execute("SELECT pause_campaign(%s)", (campaign,))
        db.execute("SELECT pause_campaign(%s)", (campaign,))


def test_other_errors_pass_through(db):
    with pytest.raises(psycopg.errors.UndefinedFunction), wrap_db_errors():
        db.execute("SELECT no_such_function()")


def test_a_raise_without_a_code_is_not_a_domain_error(db):
    with pytest.raises(psycopg.errors.RaiseException), wrap_db_errors():
        db.execute("DO $$ BEGIN RAISE EXCEPTION 'not ours'; END $$")

"""Replaceable SQL (db/MANIFEST): a changed file is refused by name until
`julia db upgrade` applies it, once; two upgrades at once are safe; a failed
upgrade changes nothing; code older than the database still starts."""

from __future__ import annotations

import subprocess
import sys

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from starlette.testclient import TestClient

from app.core.config import load_settings
from app.http.app import create_app
from app.store import schema
from tests.acceptance.conftest import free_port, start_api
from tests.conftest import load_template, wait_for
from tests.migration.catalog import REPO, build_with_commit, commit_tree, snapshot
from tests.migration.conftest import cli_module, julia_env, run_julia_from, tree_copy
from tests.migration.test_history import HISTORY

# A change to a replaceable file: one more function in db/health.sql.
PROBE = """
-- Added by a test: proves which code's health.sql the database has.
CREATE OR REPLACE FUNCTION public.schema_probe()
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$ SELECT 'edited' $$;
"""


def ledger(url: str) -> dict[str, object]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return {
            "files": conn.execute(
                "SELECT file, sha256, applied_at, code_version FROM schema_files ORDER BY 1"
            ).fetchall(),
            "history": conn.execute("SELECT id, fingerprint FROM schema_fingerprints ORDER BY id").fetchall(),
        }


def has_probe(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT to_regprocedure('public.schema_probe()') IS NOT NULL").fetchone()[0]


@pytest.fixture
def edited_tree():
    """A copy of this tree whose db/health.sql has one more function."""
    with tree_copy() as tree:
        with (tree / "db" / "health.sql").open("a", encoding="utf-8") as f:
            f.write(PROBE)
        yield tree


def test_code_with_a_changed_file_refuses_the_database_by_name_until_upgraded(edited_tree, database_url, test_env):
    env = {**test_env, "DATABASE_URL": database_url}
    # The database was built by this tree; the edited code needs its health.sql.
    for command in (["api", "--port", "1"], ["worker"]):
        refused = run_julia_from(edited_tree, command, env)
        assert refused.returncode == 1, refused.stderr
        assert "replaceable SQL not applied: db/health.sql" in refused.stderr
        assert "julia db upgrade" in refused.stderr
    current = run_julia_from(edited_tree, ["db", "current"], env)
    assert current.returncode == 1
    assert '"files": ["health.sql"]' in current.stdout

    assert run_julia_from(edited_tree, ["db", "upgrade"], env).returncode == 0
    assert has_probe(database_url)
    assert run_julia_from(edited_tree, ["db", "current"], env).returncode == 0
    applied = ledger(database_url)

    # The next upgrade is a no-op: the ledger and the history stay as they are.
    assert run_julia_from(edited_tree, ["db", "upgrade"], env).returncode == 0
    assert ledger(database_url) == applied


def test_running_code_answers_503_naming_the_file_the_database_lacks(edited_tree, database_url, test_env):
    # A database built by other code (the edited copy) lacks this code's health.sql.
    other = {**test_env, "DATABASE_URL": database_url}
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE schema_fingerprints")  # as if this code had never migrated it
    assert run_julia_from(edited_tree, ["db", "upgrade"], other).returncode == 0

    with TestClient(create_app(load_settings("api", test_env))) as client:
        response = client.get("/health/schema")
        assert response.status_code == 503
        assert response.json()["status"] == "behind"
        assert response.json()["files"] == ["health.sql"]
        deep = client.get("/health/deep")
        assert deep.status_code == 503
        assert deep.json()["checks"]["schema_files"]["files"] == ["db/health.sql"]

        # This code's upgrade applies its file and drops what its files no longer define.
        assert run_julia_from(None, ["db", "upgrade"], test_env).returncode == 0
        assert client.get("/health/schema").status_code == 200
        assert client.get("/health/deep").status_code == 200
    assert not has_probe(database_url)


def test_code_older_than_the_database_starts_and_does_not_revert_it(edited_tree, database_url, test_env, spawn):
    # The edited copy is the newer release: it migrates the database.
    env = {**test_env, "DATABASE_URL": database_url}
    assert run_julia_from(edited_tree, ["db", "upgrade"], env).returncode == 0
    before = ledger(database_url)

    # This tree is now the previous release (a rollback): it starts, with a warning ...
    api, url = start_api(spawn, env)
    body = httpx.get(f"{url}/health/schema").json()
    assert body["status"] == "ahead"
    assert "newer replaceable SQL" in body["detail"]
    assert httpx.get(f"{url}/health/deep").status_code == 200
    output = api.stop()
    assert "newer replaceable SQL than this code" in output and "starting anyway" in output

    # ... and its `julia db upgrade` does not put the older SQL back, unless told to.
    assert run_julia_from(None, ["db", "upgrade"], env).returncode == 0
    assert ledger(database_url) == before and has_probe(database_url)
    assert run_julia_from(None, ["db", "upgrade", "--allow-older"], env).returncode == 0
    assert not has_probe(database_url)


@pytest.mark.parametrize("release", ["previous-landing", "last-landing"])
def test_the_previous_landed_release_starts_on_this_schema(release, empty_url, test_env):
    """Rollback: the last release before the ledger, and the last landing, run again on the
    database they built once this code has upgraded it (as a deployment does: the release
    migrated it, this code's upgrade moved it on). The last landing has this code's head
    revision: only its replaceable SQL is older, which the database's ledger history shows."""
    build_with_commit(HISTORY[release], empty_url)
    load_template(dbname=conninfo_to_dict(empty_url)["dbname"])  # this code's upgrade and bootstrap
    test_env = {**test_env, "DATABASE_URL": empty_url}
    with commit_tree(HISTORY[release]) as old:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", cli_module(old), "api", "--host", "127.0.0.1", "--port", str(port)],
            env=julia_env(old, test_env),
            cwd=old,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:

            def up() -> bool:
                assert proc.poll() is None, proc.communicate()[0]
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(up, timeout=30, interval=0.1)
            body = httpx.get(f"http://127.0.0.1:{port}/health/schema").json()
            assert body["status"] == "ahead"
            assert body["current"] == schema.expected_head()
            assert httpx.get(f"http://127.0.0.1:{port}/health/deep").status_code == 200
        finally:
            proc.terminate()
            output = proc.communicate(timeout=20)[0]
    # A newer head revision, or (same head) newer replaceable SQL: either way it warns and runs.
    assert "database is ahead of this code" in output or "database has newer replaceable SQL" in output


def test_two_upgrades_at_once_both_succeed_with_one_ledger(empty_url):
    env = {"DATABASE_URL": empty_url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app.ops.cli", "db", "upgrade"],
            env=julia_env(None, env),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    state = ledger(empty_url)
    assert [row["file"] for row in state["files"]] == sorted(f.name for f in schema.replaceable_files())
    assert [row["fingerprint"] for row in state["history"]] == [schema.code_fingerprint()]
    with psycopg.connect(empty_url) as conn:
        assert schema.schema_status(conn).ok


def test_a_failing_file_leaves_the_database_as_it_was(database_url, test_env):
    env = {**test_env, "DATABASE_URL": database_url}
    with psycopg.connect(database_url) as conn:
        catalog = snapshot(conn)
    before = ledger(database_url)
    with tree_copy() as tree:
        with (tree / "db" / "tools.sql").open("a", encoding="utf-8") as f:
            f.write("\nCREATE OR REPLACE FUNCTION public.broken() RETURNS int LANGUAGE sql AS $$ SELECT nope $$;\n")
        (tree / "db" / "jobs.sql").write_text("-- emptied: its functions would be dropped\n", encoding="utf-8")
        result = run_julia_from(tree, ["db", "upgrade"], env)
    assert result.returncode != 0
    assert "db/tools.sql failed to apply" in result.stderr
    assert 'column "nope" does not exist' in result.stderr
    with psycopg.connect(database_url) as conn:
        assert snapshot(conn) == catalog
    assert ledger(database_url) == before


def test_a_function_no_file_defines_is_dropped_by_the_next_upgrade(db, database_url):
    db.execute("CREATE FUNCTION public.left_behind() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$")
    db.execute("CREATE VIEW public.left_behind_view AS SELECT 1 AS one")
    db.execute("DELETE FROM schema_files WHERE file = 'jobs.sql'")  # something is new: the manifest is applied
    schema.upgrade(database_url)
    gone = db.execute(
        "SELECT to_regprocedure('public.left_behind()') IS NULL AS fn,"
        " to_regclass('public.left_behind_view') IS NULL AS v"
    ).fetchone()
    assert gone == {"fn": True, "v": True}
    assert db.execute("SELECT to_regproc('public.claim_send_slot') IS NOT NULL AS ok").fetchone()["ok"]

"""`public.lint_schema()`, `public.secure_public_schema()` and `julia db lint`
on the migrated test database (which has Supabase's anon/authenticated roles)."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from app.ops.lint import Finding, at_or_above, format_findings, run_lint


def problems(db: psycopg.Connection) -> list[Finding]:
    """Findings that make the linter unhappy (ERROR and WARN)."""
    return at_or_above(run_lint(db), "warn")


def codes_for(db: psycopg.Connection, obj: str) -> set[tuple[str, str, str]]:
    return {(f.level, f.code, f.name) for f in run_lint(db) if f.object == obj}


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.ops.cli", "db", "lint", *args],
        env={**os.environ, "DATABASE_URL": database_url, "APP_ENV": "test"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migrated_schema_has_no_errors_or_warnings(db):
    findings = run_lint(db)
    assert [f for f in findings if f.level != "INFO"] == []
    # Our tables, procrastinate's and alembic's have RLS and (deliberately) no policy.
    assert {f.code for f in findings} == {"0008"}
    assert {"public.clientes", "public.procrastinate_jobs", "public.alembic_version"} <= {f.object for f in findings}


def test_every_public_table_has_rls_and_no_api_role_grants(db):
    rows = db.execute(
        """
        SELECT c.oid::regclass::text AS tbl, c.relrowsecurity AS rls,
               has_table_privilege('anon', c.oid, 'SELECT, INSERT, UPDATE, DELETE') AS anon,
               has_table_privilege('authenticated', c.oid, 'SELECT, INSERT, UPDATE, DELETE') AS authenticated
          FROM pg_class AS c
         WHERE c.relnamespace IN ('public'::regnamespace, 'pgmq'::regnamespace) AND c.relkind = 'r'
        """
    ).fetchall()
    assert rows
    assert [r["tbl"] for r in rows if r["tbl"].startswith("public.") and not r["rls"]] == []
    assert [r["tbl"] for r in rows if r["anon"] or r["authenticated"]] == []


def test_table_without_rls_is_an_error(db):
    db.execute("CREATE TABLE public.bad_table (id int PRIMARY KEY)")
    assert codes_for(db, "public.bad_table") == {("ERROR", "0013", "rls_disabled_in_public")}


def test_view_without_security_invoker_is_an_error(db):
    db.execute("CREATE VIEW public.bad_view AS SELECT id FROM public.clientes")
    db.execute("CREATE VIEW public.good_view WITH (security_invoker = on) AS SELECT id FROM public.clientes")
    assert codes_for(db, "public.bad_view") == {("ERROR", "0010", "security_definer_view")}
    assert codes_for(db, "public.good_view") == set()


def test_function_without_search_path_is_a_warning(db):
    db.execute("CREATE FUNCTION public.bad_fn(x int) RETURNS int LANGUAGE sql AS $$ SELECT x $$")
    assert codes_for(db, "public.bad_fn(integer)") == {("WARN", "0011", "function_search_path_mutable")}


def test_queue_table_granted_to_anon_is_an_error(db):
    db.execute("GRANT SELECT ON pgmq.q_inbound TO anon")
    assert codes_for(db, "pgmq.q_inbound") == {("ERROR", "0019", "insecure_queue_exposed_in_api")}


def test_new_functions_are_not_executable_by_api_roles(db):
    # Default privileges (db/security.sql): a function created later is not
    # callable over the Data API unless someone grants it.
    db.execute("CREATE FUNCTION public.later_fn() RETURNS int LANGUAGE sql SET search_path = '' AS $$ SELECT 1 $$")
    for role in ("anon", "authenticated"):
        ok = db.execute("SELECT has_function_privilege(%s, 'public.later_fn()', 'EXECUTE') AS ok", (role,)).fetchone()
        assert ok["ok"] is False, role
    assert db.execute("SELECT has_function_privilege('service_role', 'public.later_fn()', 'EXECUTE') AS ok").fetchone()[
        "ok"
    ]


def test_security_definer_function_executable_by_api_roles_is_a_warning(db):
    db.execute(
        "CREATE FUNCTION public.definer_fn() RETURNS int LANGUAGE sql"
        " SECURITY DEFINER SET search_path = '' AS $$ SELECT 1 $$"
    )
    db.execute("GRANT EXECUTE ON FUNCTION public.definer_fn() TO PUBLIC")
    assert codes_for(db, "public.definer_fn()") == {
        ("WARN", "0028", "anon_security_definer_function_executable"),
        ("WARN", "0029", "authenticated_security_definer_function_executable"),
    }
    db.execute("SELECT public.secure_public_schema()")
    assert codes_for(db, "public.definer_fn()") == set()


def test_extension_in_public_is_a_warning(db):
    db.execute("CREATE EXTENSION IF NOT EXISTS fuzzystrmatch WITH SCHEMA public")
    assert codes_for(db, "fuzzystrmatch") == {("WARN", "0014", "extension_in_public")}
    # Extension members are the extension's business, not 0011's.
    assert [f for f in problems(db) if f.code == "0011"] == []


def test_secure_public_schema_fixes_a_new_table_and_function(db):
    db.execute("CREATE TABLE public.bad_table (id int PRIMARY KEY)")
    db.execute("GRANT SELECT ON public.bad_table TO anon, authenticated")
    db.execute("CREATE FUNCTION public.bad_fn(x int) RETURNS int LANGUAGE sql AS $$ SELECT x $$")
    assert {f.object for f in problems(db)} == {"public.bad_table", "public.bad_fn(integer)"}

    db.execute("SELECT public.secure_public_schema()")
    db.execute("SELECT public.secure_public_schema()")  # idempotent

    assert problems(db) == []
    assert codes_for(db, "public.bad_table") == {("INFO", "0008", "rls_enabled_no_policy")}
    row = db.execute(
        "SELECT has_table_privilege('anon', 'public.bad_table', 'SELECT') AS anon,"
        " has_table_privilege('authenticated', 'public.bad_table', 'SELECT') AS authenticated"
    ).fetchone()
    assert row == {"anon": False, "authenticated": False}
    assert db.execute("SELECT public.bad_fn(7) AS x").fetchone()["x"] == 7


def test_pgmq_works_with_fixed_search_path(db):
    unfixed = db.execute(
        """
        SELECT count(*) AS n FROM pg_proc
         WHERE pronamespace = 'pgmq'::regnamespace
           AND NOT coalesce(proconfig, '{}') @> ARRAY['search_path=pgmq, pg_catalog']
        """
    ).fetchone()["n"]
    assert unfixed == 0
    msg_id = db.execute("""SELECT pgmq.send('inbound', '{"probe": 1}'::jsonb) AS id""").fetchone()["id"]
    read = db.execute("SELECT msg_id, message FROM pgmq.read('inbound', 30, 1)").fetchall()
    assert read == [{"msg_id": msg_id, "message": {"probe": 1}}]
    assert db.execute("SELECT pgmq.archive('inbound', %s::bigint) AS ok", (msg_id,)).fetchone()["ok"] is True
    assert db.execute("SELECT count(*) AS n FROM pgmq.a_inbound WHERE msg_id = %s", (msg_id,)).fetchone()["n"] == 1
    # A queue created later is not exposed either.
    db.execute("SELECT pgmq.create('lint_probe')")
    assert problems(db) == []


def test_lint_functions_are_not_callable_by_api_roles(db):
    row = db.execute(
        "SELECT has_function_privilege('anon', 'public.lint_schema()', 'EXECUTE') AS lint,"
        " has_function_privilege('authenticated', 'public.secure_public_schema()', 'EXECUTE') AS secure"
    ).fetchone()
    assert row == {"lint": False, "secure": False}


def test_format_findings_prints_a_table_and_a_summary():
    findings = [
        Finding(level="ERROR", code="0013", name="rls_disabled_in_public", object="public.t", detail="..."),
        Finding(level="INFO", code="0008", name="rls_enabled_no_policy", object="public.clientes", detail="..."),
    ]
    lines = format_findings(findings).splitlines()
    assert lines[0].split() == ["LEVEL", "CODE", "NAME", "OBJECT"]
    assert lines[1].split() == ["ERROR", "0013", "rls_disabled_in_public", "public.t"]
    assert lines[-1] == "1 errors, 0 warnings, 1 info"
    assert format_findings([]).splitlines() == ["no findings", "0 errors, 0 warnings, 0 info"]


def test_cli_passes_on_the_clean_schema_and_fails_on_a_table_without_rls(db, database_url):
    clean = run_cli(database_url)
    assert clean.returncode == 0, clean.stderr
    assert "0 errors, 0 warnings" in clean.stdout

    db.execute("CREATE TABLE public.bad_table (id int)")
    bad = run_cli(database_url)
    assert bad.returncode == 1
    assert "rls_disabled_in_public" in bad.stdout
    assert "public.bad_table" in bad.stdout


@pytest.mark.parametrize(("fail_on", "returncode"), [("warn", 1), ("error", 0)])
def test_cli_fail_on_level(db, database_url, fail_on, returncode):
    db.execute("CREATE FUNCTION public.bad_fn() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$")
    result = run_cli(database_url, "--fail-on", fail_on)
    assert result.returncode == returncode, result.stdout + result.stderr
    assert "function_search_path_mutable" in result.stdout

"""All migrations, applied to an empty database shaped like a Supabase project
(API roles that get everything in `public` by default), give a schema that
works and that the linter finds clean; applying them again changes nothing."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from app.ops.lint import at_or_above, run_lint
from app.store import schema

# Catalog state that a repeated upgrade must leave alone.
SNAPSHOT = """
SELECT c.oid::regclass::text AS object, c.relkind::text AS kind, c.relrowsecurity::text AS detail,
       coalesce(c.relacl::text, '') AS acl
  FROM pg_class AS c
 WHERE c.relnamespace IN ('public'::regnamespace, 'pgmq'::regnamespace)
UNION ALL
SELECT p.oid::regprocedure::text, 'function', coalesce(p.proconfig::text, ''), coalesce(p.proacl::text, '')
  FROM pg_proc AS p
 WHERE p.pronamespace IN ('public'::regnamespace, 'pgmq'::regnamespace)
 ORDER BY 1
"""


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


def current_revision(conn: psycopg.Connection) -> str:
    return conn.execute("SELECT version_num FROM public.alembic_version").fetchone()["version_num"]


def assert_works_and_is_clean(conn: psycopg.Connection) -> None:
    assert current_revision(conn) == schema.expected_head()
    assert conn.execute("SELECT to_regprocedure('public.process_inbound(bigint, jsonb)') IS NOT NULL AS ok").fetchone()[
        "ok"
    ]
    msg_id = conn.execute("""SELECT pgmq.send('inbound', '{"probe": true}'::jsonb) AS id""").fetchone()["id"]
    read = conn.execute("SELECT msg_id, message FROM pgmq.read('inbound', 30, 1)").fetchall()
    assert read == [{"msg_id": msg_id, "message": {"probe": True}}]
    assert conn.execute("SELECT pgmq.archive('inbound', %s::bigint) AS ok", (msg_id,)).fetchone()["ok"] is True
    assert at_or_above(run_lint(conn), "warn") == []


def test_upgrade_from_empty_to_head(empty_url):
    schema.upgrade(empty_url)
    with connect(empty_url) as conn:
        assert_works_and_is_clean(conn)
        # The Supabase default grants were revoked, and stay revoked for new tables.
        exposed = conn.execute(
            """
            SELECT c.oid::regclass::text AS tbl FROM pg_class AS c
             WHERE c.relnamespace IN ('public'::regnamespace, 'pgmq'::regnamespace) AND c.relkind IN ('r', 'S')
               AND (has_table_privilege('anon', c.oid, 'SELECT')
                    OR has_table_privilege('authenticated', c.oid, 'SELECT'))
            """
        ).fetchall()
        assert exposed == []
        conn.execute("CREATE TABLE public.added_later (id int)")
        assert conn.execute("SELECT has_table_privilege('anon', 'public.added_later', 'SELECT') AS ok").fetchone() == {
            "ok": False
        }
        # No function in public or pgmq is callable over the Data API (/rest/v1/rpc/...),
        # now or when created later; service_role keeps EXECUTE.
        callable_by_api = conn.execute(
            """
            SELECT p.oid::regprocedure::text AS fn, r.rolname AS role FROM pg_proc AS p, pg_roles AS r
             WHERE p.pronamespace IN ('public'::regnamespace, 'pgmq'::regnamespace)
               AND r.rolname IN ('anon', 'authenticated') AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
            """
        ).fetchall()
        assert callable_by_api == []
        assert conn.execute(
            "SELECT bool_and(has_function_privilege('service_role', p.oid, 'EXECUTE')) AS ok FROM pg_proc AS p"
            " WHERE p.pronamespace = 'public'::regnamespace"
        ).fetchone() == {"ok": True}
        conn.execute("CREATE FUNCTION public.added_later_fn() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$")
        assert conn.execute(
            "SELECT has_function_privilege('anon', 'public.added_later_fn()', 'EXECUTE') AS ok"
        ).fetchone() == {"ok": False}
        # service_role keeps what Supabase gave it.
        assert conn.execute(
            "SELECT has_table_privilege('service_role', 'public.clientes', 'SELECT') AS ok"
        ).fetchone() == {"ok": True}


def test_upgrade_again_is_a_no_op(empty_url):
    schema.upgrade(empty_url)
    with connect(empty_url) as conn:
        before = conn.execute(SNAPSHOT).fetchall()
    schema.upgrade(empty_url)
    with connect(empty_url) as conn:
        assert conn.execute(SNAPSHOT).fetchall() == before
        assert current_revision(conn) == schema.expected_head()


def test_downgrade_to_0002_and_upgrade_again(empty_url):
    from alembic import command

    schema.upgrade(empty_url)
    command.downgrade(schema.alembic_config(empty_url), "0002")
    with connect(empty_url) as conn:
        assert current_revision(conn) == "0002"
        assert conn.execute("SELECT to_regprocedure('public.lint_schema()') IS NULL AS gone").fetchone()["gone"]
    schema.upgrade(empty_url)
    with connect(empty_url) as conn:
        assert_works_and_is_clean(conn)


def test_0012_on_a_database_with_duplicate_doctors_keeps_them_for_the_merge_and_renews_functions(empty_url):
    schema.upgrade(empty_url, "0010")
    with connect(empty_url) as conn:
        # A doctor twice (imported 13 digits, created by her 12-digit JID), and a
        # function as an earlier release left it: the upgrade must re-apply the new one.
        conn.execute("INSERT INTO clientes (telefone, nome) VALUES ('5531987654321', 'Ana'), ('553187654321', NULL)")
        conn.execute(
            "CREATE OR REPLACE FUNCTION public.campaign_audience(p_campanha_id bigint) RETURNS SETOF bigint "
            "LANGUAGE sql STABLE SET search_path = '' AS $$ SELECT id FROM public.clientes $$"
        )
    schema.upgrade(empty_url)
    with connect(empty_url) as conn:
        assert_works_and_is_clean(conn)
        pairs = conn.execute("SELECT mantido_telefone, removido_telefone FROM duplicate_clientes()").fetchall()
        assert pairs == [{"mantido_telefone": "5531987654321", "removido_telefone": "553187654321"}]
        body = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'campaign_audience'").fetchone()["prosrc"]
        assert "phone_key" in body
        merged = conn.execute("SELECT count(*) AS n FROM merge_duplicate_clientes(true)").fetchone()["n"]
        assert merged == 1
        assert conn.execute("SELECT count(*) AS n FROM clientes").fetchone()["n"] == 1


RENAMED = {
    "chatwoot_contatos": "chatwoot_contacts",
    "chatwoot_conversas": "chatwoot_conversations",
    "chatwoot_mensagens": "chatwoot_messages",
    "chatwoot_eventos": "chatwoot_events",
    "notificacoes": "notifications",
}


def test_0015_renames_julias_own_tables_with_their_rows_constraints_and_indexes(empty_url):
    schema.upgrade(empty_url, "0014")
    with connect(empty_url) as conn:
        conn.execute("INSERT INTO notificacoes (kind, payload, dedupe_key) VALUES ('handoff', '{}', 'k')")
    schema.upgrade(empty_url)
    with connect(empty_url) as conn:
        assert_works_and_is_clean(conn)
        assert conn.execute("SELECT kind, dedupe_key FROM notifications").fetchall() == [
            {"kind": "handoff", "dedupe_key": "k"}
        ]
        names = {
            r["name"]
            for r in conn.execute(
                "SELECT relname AS name FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                " UNION SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
            ).fetchall()
        }
    assert set(RENAMED.values()) <= names
    assert sorted(n for n in names if n.startswith(tuple(RENAMED))) == []
    assert {
        "chatwoot_messages_pkey",
        "chatwoot_messages_pending_idx",
        "notifications_dedupe_key_key",
        "chatwoot_events_id_seq",
        "notifications_id_seq",
    } <= names

"""A comparable picture of a database's schema, and databases built by other commits.

`snapshot(conn)` lists, per kind, one line per object with everything that
makes it what it is (tables, columns, defaults, constraints, indexes, views,
triggers, function bodies and settings, grants, default privileges,
extensions, types, policies, text search configurations) and nothing that
only says how it got there (OIDs, column order, the order grants were made
in). Two databases with equal snapshots have the same schema.

`build_with_commit` builds a database with the code of an earlier commit
of this repository (its own `app/`, `alembic/` and `db/`, run from a
`git archive` of it), the way that build's `julia db upgrade` did.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = "('public', 'pgmq', 'extensions')"

CATALOG: dict[str, str] = {
    "schema": f"""
        SELECT n.nspname || ' owner=' || pg_get_userbyid(n.nspowner) FROM pg_namespace AS n
         WHERE n.nspname IN {SCHEMAS}""",
    "extension": """
        SELECT e.extname || ' ' || e.extversion || ' in ' || e.extnamespace::regnamespace FROM pg_extension AS e""",
    "relation": f"""
        SELECT c.oid::regclass || ' kind=' || c.relkind::text || ' rls=' || c.relrowsecurity::text
               || ' options=' || coalesce(c.reloptions::text, '') || ' persistence=' || c.relpersistence::text
          FROM pg_class AS c
         WHERE c.relnamespace::regnamespace::text IN {SCHEMAS} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')""",
    "column": f"""
        SELECT c.oid::regclass || '.' || quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
               || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
               || CASE a.attidentity WHEN '' THEN '' ELSE ' identity ' || a.attidentity::text END
               || CASE a.attgenerated WHEN '' THEN '' ELSE ' generated ' || a.attgenerated::text END
               || coalesce(' collate ' || nullif(co.collname, 'default'), '')
          FROM pg_attribute AS a
          JOIN pg_class AS c ON c.oid = a.attrelid
          LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          LEFT JOIN pg_collation AS co ON co.oid = a.attcollation
         WHERE c.relnamespace::regnamespace::text IN {SCHEMAS} AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND a.attnum > 0 AND NOT a.attisdropped""",
    "constraint": f"""
        SELECT coalesce(con.conrelid::regclass::text, con.contypid::regtype::text) || ' ' || quote_ident(con.conname)
               || ' ' || pg_get_constraintdef(con.oid)
          FROM pg_constraint AS con
         WHERE con.connamespace::regnamespace::text IN {SCHEMAS}""",
    "index": f"""
        SELECT pg_get_indexdef(i.indexrelid) FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
         WHERE c.relnamespace::regnamespace::text IN {SCHEMAS}""",
    "view": f"""
        SELECT c.oid::regclass || ' AS ' || pg_get_viewdef(c.oid) FROM pg_class AS c
         WHERE c.relnamespace::regnamespace::text IN {SCHEMAS} AND c.relkind IN ('v', 'm')""",
    "trigger": f"""
        SELECT pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text FROM pg_trigger AS t
          JOIN pg_class AS c ON c.oid = t.tgrelid
         WHERE c.relnamespace::regnamespace::text IN {SCHEMAS} AND NOT t.tgisinternal""",
    "function": f"""
        SELECT pg_get_functiondef(p.oid) FROM pg_proc AS p
         WHERE p.pronamespace::regnamespace::text IN {SCHEMAS} AND p.prokind IN ('f', 'p', 'w')""",
    "aggregate": f"""
        SELECT p.oid::regprocedure::text FROM pg_proc AS p
         WHERE p.pronamespace::regnamespace::text IN {SCHEMAS} AND p.prokind = 'a'""",
    "type": f"""
        SELECT t.oid::regtype || ' ' || t.typtype::text
               || coalesce(' (' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                                      FROM pg_enum AS e WHERE e.enumtypid = t.oid) || ')', '')
          FROM pg_type AS t
         WHERE t.typnamespace::regnamespace::text IN {SCHEMAS} AND t.typtype IN ('e', 'd', 'c')
           AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class AS c WHERE c.oid = t.typrelid) = 'c')""",
    "policy": f"""
        SELECT p.schemaname || '.' || p.tablename || ' ' || p.policyname || ' ' || p.cmd || ' '
               || array_to_string(p.roles, ',') || ' ' || coalesce(p.qual, '') || ' ' || coalesce(p.with_check, '')
          FROM pg_policies AS p WHERE p.schemaname IN {SCHEMAS}""",
    "text search": """
        SELECT c.cfgnamespace::regnamespace || '.' || c.cfgname || ' ' || t.alias || '='
               || coalesce((SELECT string_agg(m.mapdict::regdictionary::text, ',' ORDER BY m.mapseqno)
                              FROM pg_ts_config_map AS m WHERE m.mapcfg = c.oid AND m.maptokentype = t.tokid), '')
          FROM pg_ts_config AS c, ts_token_type(c.cfgparser) AS t
         WHERE c.cfgnamespace = 'public'::regnamespace""",
    # Grants, one line per (object, grantee, privilege): the order they were made in does not matter.
    "grant": f"""
        SELECT c.oid::regclass || ' ' || coalesce(nullif(pg_get_userbyid(x.grantee), '-'), 'PUBLIC')
               || ' ' || x.privilege_type
          FROM pg_class AS c, aclexplode(c.relacl) AS x
         WHERE c.relnamespace::regnamespace::text IN {SCHEMAS}
        UNION ALL
        SELECT p.oid::regprocedure || ' ' || CASE x.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END
               || ' ' || x.privilege_type
          FROM pg_proc AS p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS x
         WHERE p.pronamespace::regnamespace::text IN {SCHEMAS}
        UNION ALL
        SELECT 'schema ' || n.nspname || ' ' || CASE x.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END
               || ' ' || x.privilege_type
          FROM pg_namespace AS n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) AS x
         WHERE n.nspname IN {SCHEMAS}""",
    "default privilege": """
        SELECT pg_get_userbyid(d.defaclrole) || ' ' || coalesce(d.defaclnamespace::regnamespace::text, '*') || ' '
               || d.defaclobjtype::text || ' '
               || CASE x.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END
               || ' ' || x.privilege_type
          FROM pg_default_acl AS d, aclexplode(d.defaclacl) AS x""",
}


def snapshot(conn: psycopg.Connection) -> dict[str, set[str]]:
    """Per kind, the set of lines describing the schema."""
    out = {}
    for kind, query in CATALOG.items():
        lines = {row[0] for row in conn.execute(query).fetchall()}
        if None in lines:
            raise AssertionError(f"the {kind!r} catalog query produced a NULL line")
        out[kind] = lines
    return out


def differences(left: dict[str, set[str]], right: dict[str, set[str]]) -> list[str]:
    """Readable differences: '<kind> only in left: ...' / '... only in right: ...'."""
    out = []
    for kind in CATALOG:
        out += [f"{kind} only in upgraded: {line}" for line in sorted(left[kind] - right[kind])]
        out += [f"{kind} only in fresh: {line}" for line in sorted(right[kind] - left[kind])]
    return out


def changed_objects(left: dict[str, set[str]], right: dict[str, set[str]]) -> int:
    """How many objects differ (a function with another body counts once, not twice)."""
    keys = set()
    for kind in CATALOG:
        for line in left[kind] ^ right[kind]:
            keys.add((kind, line.split("\n", 2)[0] if kind == "function" else line.split(" ", 1)[0]))
    return len(keys)


@contextmanager
def commit_tree(commit: str) -> Iterator[Path]:
    """The files of `commit` that build a database, in a temporary directory."""
    try:
        data = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", commit, "app", "alembic", "alembic.ini", "db"],
            check=True,
            capture_output=True,
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(
            f"commit {commit} is not in this clone ({exc.stderr.decode().strip()}); "
            "the migration-history tests need the git history of main"
        ) from None
    with tempfile.TemporaryDirectory(prefix=f"julia-{commit[:7]}-") as tmp:
        with tarfile.open(fileobj=BytesIO(data)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp)


def upgrade_with_tree(tree: Path, database_url: str) -> None:
    """`julia db upgrade` as the code in `tree` does it (its own app/, alembic/, db/)."""
    program = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "try:\n    from app.store import schema\n"  # the house layout
        "except ImportError:\n    from app import schema\n"  # trees before it
        "schema.upgrade(sys.argv[2])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DATABASE_URL"))}
    result = subprocess.run(
        [sys.executable, "-c", program, str(tree), database_url],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "psycopg.errors." in line]
        raise RuntimeError(f"upgrade with {tree.name} failed: {errors[-1] if errors else ''}\n{result.stderr[-3000:]}")


def build_with_commit(commit: str, database_url: str) -> None:
    with commit_tree(commit) as tree:
        upgrade_with_tree(tree, database_url)

"""The refusals made before anything is written: a transaction pooler, the
same database twice, different schema revisions, a missing environment
marker, production data going anywhere but production."""

from __future__ import annotations

import psycopg

from app.ops.dbcopy.catalog import catalog_queries
from app.ops.dbcopy.records import CopyRefused, Side
from app.store.dburl import DatabaseTarget, parse_database_url


def parse_side(url: str, role: str) -> DatabaseTarget:
    """Parse a URL and refuse a transaction pooler."""
    try:
        target = parse_database_url(url)
    except ValueError:
        raise CopyRefused(f"the {role} URL is not a valid PostgreSQL connection string") from None
    if target.is_transaction_pooler:
        raise CopyRefused(
            f"the {role} URL points at a transaction pooler ({target.describe()}); COPY and one transaction "
            "per table need a real session. Use the direct URL (db.<project-ref>.supabase.co:5432) or the "
            "session pooler (port 5432)."
        )
    return target


def refuse_same_address(source: DatabaseTarget, target: DatabaseTarget) -> None:
    """Raise CopyRefused when both URLs name the same host, port and database."""
    if (source.host, source.port, source.dbname) == (target.host, target.port, target.dbname):
        raise CopyRefused(f"source and target are the same database ({source.describe()}); nothing to copy")


def _server_identity(conn: psycopg.Connection) -> tuple[str, str, str | None]:
    row = conn.execute(catalog_queries["server_identity"]).fetchone()
    try:
        sysid = conn.execute(catalog_queries["system_identifier"]).fetchone()["sysid"]
    except psycopg.errors.InsufficientPrivilege:
        sysid = None  # not granted on managed servers; the postmaster start time tells servers apart too
    return row["dbname"], row["started"], sysid


def refuse_same_database(source: psycopg.Connection, target: psycopg.Connection, describe: str) -> None:
    """Raise CopyRefused when both connections reach the same database, however the URLs spell it."""
    s_db, s_started, s_sysid = _server_identity(source)
    t_db, t_started, t_sysid = _server_identity(target)
    same_server = s_started == t_started and (s_sysid is None or t_sysid is None or s_sysid == t_sysid)
    if s_db == t_db and same_server:
        raise CopyRefused(f"source and target are the same database ({describe}); nothing to copy")


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    return conn.execute(catalog_queries["relation_exists"], {"name": relation}).fetchone()["present"]


def read_side(conn: psycopg.Connection, target: DatabaseTarget) -> Side:
    """The database's alembic revision and environment markers (None where absent)."""
    revision = environment = project_ref = None
    if _exists(conn, "public.alembic_version"):
        found = conn.execute(catalog_queries["alembic_revision"]).fetchone()
        revision = found["version_num"] if found else None
    if _exists(conn, "public.app_settings"):
        markers = {r["key"]: r["value"] for r in conn.execute(catalog_queries["environment_markers"])}
        environment, project_ref = markers.get("environment"), markers.get("supabase_project_ref")
    return Side(target=target, environment=environment, project_ref=project_ref, revision=revision)


def refuse_unsafe_pair(source: Side, target: Side) -> None:
    """Schema revisions must match, both markers must exist, production data stays in production."""
    if source.revision != target.revision:
        raise CopyRefused(
            f"schema versions differ: source is at alembic revision {source.revision or '<none>'}, target at "
            f"{target.revision or '<none>'}. Run `julia db upgrade` against the one that is behind, then copy."
        )
    for role, side in (("source", source), ("target", target)):
        if not side.environment:
            raise CopyRefused(
                f"the {role} database ({side.target.describe()}) has no environment marker in app_settings; "
                "run `julia db bootstrap` against it first, so the copy knows which way it goes"
            )
    if source.environment == "production" and target.environment != "production":
        raise CopyRefused(
            f"refusing to copy from a production database into a {target.environment} one "
            f"({source.target.describe()} → {target.target.describe()}): production data (doctors' phone "
            "numbers) never leaves production. The copy goes DEV → PROD."
        )

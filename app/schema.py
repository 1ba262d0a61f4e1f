"""Where the SQL lives and which schema revision the code needs.

Migrations read `db/*.sql`; the processes compare the database's alembic
revision with the head shipped in `alembic/versions` and refuse to start
when the database is behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psycopg
from psycopg.rows import tuple_row

ROOT = Path(__file__).resolve().parent.parent
DB_DIR = ROOT / "db"
ALEMBIC_INI = ROOT / "alembic.ini"


def read_sql(name: str) -> str:
    """Text of `db/<name>`; raises FileNotFoundError naming the file."""
    return (DB_DIR / name).read_text(encoding="utf-8")


_FUNCTION = re.compile(r"^CREATE OR REPLACE FUNCTION .*?^\$\$;$", re.MULTILINE | re.DOTALL)


def read_sql_functions(name: str) -> str:
    """The `CREATE OR REPLACE FUNCTION` statements of `db/<name>`, without its table DDL.

    For re-applying the functions of a file that also holds (frozen) table DDL.
    Raises ValueError when the file has none.
    """
    found = _FUNCTION.findall(read_sql(name))
    if not found:
        raise ValueError(f"db/{name} has no CREATE OR REPLACE FUNCTION statement")
    return "\n\n".join(found) + "\n"


def alembic_config(database_url: str | None = None):  # -> alembic.config.Config
    """An alembic Config for this project; with a URL, env.py connects to it."""
    import argparse

    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    if database_url:
        # env.py reads it like `alembic -x database_url=...`.
        cfg.cmd_opts = argparse.Namespace(x=[f"database_url={database_url}"])
    return cfg


@cache
def revision_chain() -> tuple[str, ...]:
    """Revisions from base to head, in order."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return tuple(reversed([rev.revision for rev in script.walk_revisions()]))


def expected_head() -> str:
    """The alembic head this code needs."""
    return revision_chain()[-1]


@dataclass(frozen=True, kw_only=True)
class SchemaStatus:
    current: str | None
    expected: str
    missing: tuple[str, ...]
    # The database carries a revision this code does not know: a newer
    # release migrated it (migrations before code). Older code still runs on
    # it, because migrations are additive; that is what makes rollback work.
    ahead: bool = False

    @property
    def ok(self) -> bool:
        return not self.missing

    def as_json(self) -> dict[str, object]:
        return {
            "status": "ahead" if self.ahead else "ok" if self.ok else "behind",
            "current": self.current,
            "expected": self.expected,
            "missing": list(self.missing),
        }


def schema_status(conn: psycopg.Connection) -> SchemaStatus:
    """Compare the database's alembic revision with the code's head."""
    cur = conn.cursor(row_factory=tuple_row)
    (present,) = cur.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL").fetchone()
    current = None
    if present:
        found = cur.execute("SELECT version_num FROM public.alembic_version").fetchone()
        current = found[0] if found else None
    return status_for(current)


def status_for(current: str | None) -> SchemaStatus:
    chain = revision_chain()
    if current is not None and current not in chain:
        return SchemaStatus(current=current, expected=chain[-1], missing=(), ahead=True)
    missing = chain[chain.index(current) + 1 :] if current in chain else chain
    return SchemaStatus(current=current, expected=chain[-1], missing=tuple(missing))


class SchemaBehind(Exception):
    """The database lacks migrations this code needs."""


def require_current_schema(database_url: str) -> SchemaStatus:
    """Raise SchemaBehind naming the first missing revision, else return the status."""
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        status = schema_status(conn)
    if not status.ok:
        raise SchemaBehind(
            f"database is at revision {status.current or '<none>'}, this code needs "
            f"{status.expected}; missing: {', '.join(status.missing)}. "
            "Run `julia db upgrade` first (migrations before code)."
        )
    return status


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision`."""
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)

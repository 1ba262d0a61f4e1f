"""Which schema the code needs, and bringing a database to it.

Two kinds of schema objects (docs/schema.md):

- **Revisions** (`alembic/versions/`): tables, columns, constraints, indexes,
  extensions, queues and data fixes. A revision is history: once landed, what
  it does never changes.
- **Replaceable SQL** (`db/`, applied in the order of `db/MANIFEST`):
  functions, views, triggers and grants, written as idempotent
  `CREATE OR REPLACE` / `DROP ... IF EXISTS`. The database keeps a ledger of
  the files it applied (name, sha256, when, by which code version) and a
  history of schema fingerprints.

`julia db upgrade` applies the missing revisions and then, when anything is
new, the whole manifest, drops what the manifest no longer defines, secures
the schema and records the ledger — in one transaction, under an advisory
lock (alembic/env.py calls `lock_for_upgrade` and `finish_upgrade`).

The processes refuse a database *behind* the code (a revision missing, or a
file whose checksum the database never had) and start on one *ahead* of it
(a newer release migrated it: its revision is unknown here, or this code's
fingerprint is in the database's history but not the newest one) — that is
what makes a rollback to the previous image work.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from app.core.errors import JuliaError
from app.store.queries import queries
from app.store.revisions import expected_head, revision_chain

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
DB_DIR = ROOT / "db"
MANIFEST = DB_DIR / "MANIFEST"
ALEMBIC_INI = ROOT / "alembic.ini"

# pg_advisory_xact_lock key of `julia db upgrade` (two deploys racing wait in turn).
UPGRADE_LOCK = 7_243_110_001


# ------------------------------------------------------------
# What the code ships
# ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ReplaceableFile:
    name: str
    sha256: str
    text: str = field(repr=False)


def read_manifest(manifest: Path = MANIFEST) -> tuple[ReplaceableFile, ...]:
    """The replaceable files in apply order; raises naming a listed file that is missing."""
    files = []
    for raw in manifest.read_text(encoding="utf-8").splitlines():
        name = raw.split("#", 1)[0].strip()
        if not name:
            continue
        path = manifest.parent / name
        if not path.is_file():
            raise FileNotFoundError(f"{manifest.name} lists {name}, which does not exist in {manifest.parent}")
        data = path.read_bytes()
        files.append(ReplaceableFile(name=name, sha256=hashlib.sha256(data).hexdigest(), text=data.decode("utf-8")))
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise ValueError(f"{manifest.name} lists a file twice: {sorted(n for n in names if names.count(n) > 1)}")
    return tuple(files)


@cache
def replaceable_files() -> tuple[ReplaceableFile, ...]:
    return read_manifest()


def fingerprint(head: str, files: Iterable[ReplaceableFile]) -> str:
    """One hash of everything schema-related this code ships: head revision + file checksums."""
    digest = hashlib.sha256(f"revision {head}\n".encode())
    for f in files:
        digest.update(f"{f.name} {f.sha256}\n".encode())
    return digest.hexdigest()


def code_fingerprint() -> str:
    return fingerprint(expected_head(), replaceable_files())


def code_version() -> str:
    """What to record as 'applied by': the deploy's commit when the platform says it."""
    for name in ("RAILWAY_GIT_COMMIT_SHA", "GITHUB_SHA", "SOURCE_COMMIT"):
        if os.environ.get(name):
            return os.environ[name][:40]
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"julia-agent {version('julia-agent')}"
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "julia-agent (source)"


def alembic_config(database_url: str | None = None, *, allow_older: bool = False):  # -> alembic.config.Config
    """An alembic Config for this project; with a URL, env.py connects to it."""
    import argparse

    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    x = []
    if database_url:
        # env.py reads these like `alembic -x database_url=...`.
        x.append(f"database_url={database_url}")
    if allow_older:
        x.append("allow_older=1")
    if x:
        cfg.cmd_opts = argparse.Namespace(x=x)
    return cfg


# ------------------------------------------------------------
# What the database has
# ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SchemaStatus:
    current: str | None
    expected: str
    missing: tuple[str, ...] = ()
    # Replaceable files whose applied checksum is not this code's (or that the
    # database never applied), when the database is not simply ahead.
    files: tuple[str, ...] = ()
    # The database is newer than this code (a newer release migrated it).
    # Older code still runs on it: that is what makes rollback work.
    ahead: bool = False
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return not self.missing and not self.files

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "status": "ahead" if self.ahead else "ok" if self.ok else "behind",
            "current": self.current,
            "expected": self.expected,
            "missing": list(self.missing),
        }
        if self.files:
            body["files"] = list(self.files)
        if self.detail:
            body["detail"] = self.detail
        return body

    def problem(self) -> str:
        """One sentence for an operator: what is missing and what to run."""
        parts = []
        if self.missing:
            parts.append(
                f"database is at revision {self.current or '<none>'}, this code needs {self.expected}; "
                f"missing: {', '.join(self.missing)}"
            )
        if self.files:
            parts.append(f"replaceable SQL not applied: {', '.join('db/' + f for f in self.files)}")
        return "; ".join(parts) + ". Run `julia db upgrade` first (migrations before code)."


def decide_status(
    current: str | None,
    applied: dict[str, str] | None,
    history: Sequence[str],
    *,
    chain: Sequence[str] | None = None,
    files: Sequence[ReplaceableFile] | None = None,
) -> SchemaStatus:
    """The rule, without I/O: revision first, then the files ledger.

    `applied` maps file name → sha256 as the database recorded it (None: no
    ledger table); `history` lists the database's fingerprints, newest last.
    """
    chain = tuple(chain if chain is not None else revision_chain())
    files = tuple(files if files is not None else replaceable_files())
    head = chain[-1]
    if current is not None and current not in chain:
        return SchemaStatus(
            current=current,
            expected=head,
            ahead=True,
            detail="database is ahead of this code (a newer release migrated it)",
        )
    if current != head:
        missing = chain[chain.index(current) + 1 :] if current in chain else chain
        return SchemaStatus(current=current, expected=head, missing=tuple(missing))
    applied = applied or {}
    differing = tuple(f.name for f in files if applied.get(f.name) != f.sha256)
    extra = tuple(sorted(set(applied) - {f.name for f in files}))
    if not differing and not extra:
        return SchemaStatus(current=current, expected=head)
    mine = fingerprint(head, files)
    if mine in history and history[-1] != mine:
        return SchemaStatus(
            current=current,
            expected=head,
            ahead=True,
            detail="database has newer replaceable SQL than this code (a newer release applied it)",
        )
    return SchemaStatus(current=current, expected=head, files=differing + extra)


def _status_from_rows(present: dict[str, Any], rows: list[dict[str, Any]] | None) -> SchemaStatus:
    current = present["revision"]
    if not present["has_ledger"]:
        return decide_status(current, None, [])
    applied = {r["file"]: r["sha256"] for r in rows or [] if r["kind"] == "file"}
    history = [r["file"] for r in rows or [] if r["kind"] == "fingerprint"]
    return decide_status(current, applied, history)


def schema_status(conn: psycopg.Connection) -> SchemaStatus:
    """Compare the database's revision and replaceable-SQL ledger with this code."""
    cur = conn.cursor(row_factory=dict_row)
    present = cur.execute(queries["schema_presence"]).fetchone()
    if present["has_version"]:
        present["revision"] = cur.execute(queries["schema_revision"]).fetchone()["revision"]
    rows = cur.execute(queries["schema_ledger"]).fetchall() if present["has_ledger"] else None
    return _status_from_rows(present, rows)


async def schema_status_async(conn: psycopg.AsyncConnection) -> SchemaStatus:
    """`schema_status` over an async connection (the api's pool)."""
    cur = conn.cursor(row_factory=dict_row)
    present = await (await cur.execute(queries["schema_presence"])).fetchone()
    if present["has_version"]:
        present["revision"] = (await (await cur.execute(queries["schema_revision"])).fetchone())["revision"]
    rows = await (await cur.execute(queries["schema_ledger"])).fetchall() if present["has_ledger"] else None
    return _status_from_rows(present, rows)


class SchemaBehind(JuliaError):
    """The database lacks revisions or replaceable SQL this code needs."""


def require_current_schema(database_url: str) -> SchemaStatus:
    """Raise SchemaBehind naming what is missing, else return the status."""
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        status = schema_status(conn)
    if not status.ok and not status.ahead:
        raise SchemaBehind(status.problem())
    return status


# ------------------------------------------------------------
# Upgrading (called by alembic/env.py inside the migration transaction)
# ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UpgradeResult:
    revision_before: str | None
    revision_after: str | None
    applied_files: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    skipped_older: bool = False


def lock_for_upgrade(conn: psycopg.Connection) -> str | None:
    """Take the upgrade lock (held until commit) and return the revision before migrating."""
    cur = conn.cursor(row_factory=dict_row)
    cur.execute("SELECT pg_catalog.pg_advisory_xact_lock(%s)", (UPGRADE_LOCK,))
    present = cur.execute(queries["schema_presence"]).fetchone()
    return cur.execute(queries["schema_revision"]).fetchone()["revision"] if present["has_version"] else None


def finish_upgrade(
    conn: psycopg.Connection, revision_before: str | None, *, allow_older: bool = False
) -> UpgradeResult:
    """After the revisions ran: apply the manifest if anything is new, drop leftovers, record the ledger.

    On a downgrade (the database is not at this code's head) the ledger is
    cleared instead, so the next upgrade applies every file again.
    """
    cur = conn.cursor(row_factory=dict_row)
    present = cur.execute(queries["schema_presence"]).fetchone()
    after = cur.execute(queries["schema_revision"]).fetchone()["revision"] if present["has_version"] else None
    if after != expected_head():
        if present["has_ledger"]:
            cur.execute(queries["clear_schema_ledger"])
        return UpgradeResult(revision_before=revision_before, revision_after=after)

    present["revision"] = after
    status = _status_from_rows(present, cur.execute(queries["schema_ledger"]).fetchall())
    revisions_applied = revision_before != after
    if status.ok and not status.ahead and not revisions_applied:
        return UpgradeResult(revision_before=revision_before, revision_after=after)
    if status.ahead and not allow_older:
        logger.warning(
            "database has newer replaceable SQL than this code; not reverting it "
            "(run `julia db upgrade --allow-older` to apply this code's SQL on purpose)",
            extra={"action": "schema_upgrade_skipped_older", "revision": after},
        )
        return UpgradeResult(revision_before=revision_before, revision_after=after, skipped_older=True)

    files = replaceable_files()
    before = {(r["kind"], r["name"]): r["stamp"] for r in cur.execute(queries["schema_objects"]).fetchall()}
    for f in files:
        try:
            cur.execute(f.text.encode("utf-8"))
        except psycopg.Error as exc:
            raise RuntimeError(f"db/{f.name} failed to apply: {exc}".strip()) from exc
    dropped = _drop_leftovers(cur, before)
    cur.execute(queries["secure_schema"])
    version = code_version()
    cur.execute(queries["clear_schema_ledger"])
    for f in files:
        cur.execute(queries["record_schema_file"], {"file": f.name, "sha256": f.sha256, "code_version": version})
    cur.execute(
        queries["record_schema_fingerprint"],
        {"fingerprint": code_fingerprint(), "revision": after, "code_version": version},
    )
    logger.info(
        "replaceable SQL applied",
        extra={"action": "schema_files_applied", "files": len(files), "dropped": dropped, "revision": after},
    )
    return UpgradeResult(
        revision_before=revision_before,
        revision_after=after,
        applied_files=tuple(f.name for f in files),
        dropped=dropped,
    )


# Drop order: what depends on functions goes first.
_DROP = {
    "trigger": "DROP TRIGGER {name}",
    "view": "DROP VIEW {name}",
    "function": "DROP ROUTINE {name}",
}


def _drop_leftovers(cur: psycopg.Cursor, before: dict[tuple[str, str], str]) -> tuple[str, ...]:
    """Drop Julia's functions, views and triggers that no manifest file (re)created in this transaction."""
    after = {(r["kind"], r["name"]): r["stamp"] for r in cur.execute(queries["schema_objects"]).fetchall()}
    stale = [key for key, stamp in after.items() if before.get(key) == stamp]
    dropped = []
    for kind in ("trigger", "view", "function"):
        for k, name in sorted(key for key in stale if key[0] == kind):
            cur.execute(_DROP[k].format(name=name).encode("utf-8"))
            dropped.append(f"{k} {name}")
    return tuple(dropped)


def upgrade(database_url: str, revision: str = "head", *, allow_older: bool = False) -> None:
    """Apply migrations up to `revision` (and, at head, the replaceable SQL)."""
    from alembic import command

    command.upgrade(alembic_config(database_url, allow_older=allow_older), revision)

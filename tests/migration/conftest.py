"""Migration fixtures: empty databases shaped like a Supabase project, and
copies of this tree or of earlier commits to run as other code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.acceptance.conftest import spawn  # noqa: F401 - the fixture, for tests here
from tests.conftest import database_url_for
from tests.migration.catalog import REPO

API_ROLES = ("anon", "authenticated", "service_role")

# What a Supabase project grants the API roles on `public` before any migration.
SUPABASE_DEFAULTS = (
    "GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role",
)


def create_supabase_like(admin_url: str, name: str) -> str:
    """Create database `name` with Supabase's API roles and default grants; return its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        # FILE_COPY: the default (WAL_LOG) writes every page through the WAL, ~6x the CPU.
        conn.execute(sql.SQL("CREATE DATABASE {} STRATEGY = FILE_COPY").format(sql.Identifier(name)))
    url = admin_url.replace("/postgres?", f"/{name}?")
    with psycopg.connect(url, autocommit=True) as conn:
        for role in API_ROLES:
            # Roles are cluster-wide: the template may have created them already.
            conn.execute(
                sql.SQL("DO $$ BEGIN CREATE ROLE {} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$").format(
                    sql.Identifier(role)
                )
            )
        for statement in SUPABASE_DEFAULTS:
            conn.execute(statement)
    return url


def drop_databases(admin_url: str, names: list[str]) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def new_database(postgresql_proc) -> Iterator[Callable[[], str]]:
    """Factory of empty Supabase-shaped databases; dropped after the module."""
    admin = database_url_for("postgres")
    made: list[str] = []

    def make() -> str:
        made.append(f"julia_migration_{uuid.uuid4().hex[:12]}")
        return create_supabase_like(admin, made[-1])

    yield make
    drop_databases(admin, made)


@pytest.fixture
def empty_url(postgresql_proc) -> Iterator[str]:
    """URL of a new, empty database with Supabase's roles and default grants."""
    admin = database_url_for("postgres")
    name = f"julia_migration_{uuid.uuid4().hex[:12]}"
    try:
        yield create_supabase_like(admin, name)
    finally:
        drop_databases(admin, [name])


@contextmanager
def tree_copy() -> Iterator[Path]:
    """A copy of this tree's schema code (app/, alembic/, db/) to edit and run as other code.

    With its bytecode (compiled by the session, and valid in the copy: copytree keeps the
    sources' mtimes): where bytecode is not written, each process run from the copy would
    compile app/ from source again."""
    with tempfile.TemporaryDirectory(prefix="julia-tree-") as tmp:
        for name in ("app", "alembic", "db"):
            shutil.copytree(REPO / name, Path(tmp) / name)
        shutil.copy(REPO / "alembic.ini", Path(tmp) / "alembic.ini")
        yield Path(tmp)


def julia_env(tree: Path | None, env: dict[str, str]) -> dict[str, str]:
    """Environment that makes `python -m CLI` run the code in `tree` (None: this tree)."""
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if tree is not None:
        base["PYTHONPATH"] = str(tree)
    return {**base, **env}


def cli_module(tree: Path | None) -> str:
    """The CLI's module in `tree`: app.ops.cli since the house layout, app.cli before."""
    root = tree or REPO
    return "app.ops.cli" if (root / "app" / "ops" / "cli.py").exists() else "app.cli"


def run_julia_from(
    tree: Path | None, args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `julia ARGS` to completion with the code in `tree` (None: this tree)."""
    return subprocess.run(
        [sys.executable, "-m", cli_module(tree), *args],
        env=julia_env(tree, env),
        cwd=tree or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )

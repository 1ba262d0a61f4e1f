"""Alembic environment: raw-SQL migrations over a psycopg 3 connection.

The URL comes from DATABASE_URL (or `-x database_url=...`) and is handed to
libpq untouched, so Unix-socket URIs and URL-encoded passwords work exactly
as they do for the api and the worker.

One transaction, under an advisory lock: the missing revisions, then the
replaceable SQL of db/MANIFEST and its ledger (app/store/schema.py). Two upgrades
started at once run one after the other; a failure leaves the database as
it was. `-x allow_older=1` applies this code's replaceable SQL even where a
newer release's is in place (a deliberate revert).
"""

from __future__ import annotations

import os

import psycopg
from sqlalchemy import create_engine, pool

from alembic import context
from app.store import schema

config = context.config


def _database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("database_url") or os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit("Config 'DATABASE_URL' is missing, and has no default.")
    return url


def run_migrations_offline() -> None:
    context.configure(url="postgresql+psycopg://", literal_binds=True, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _database_url()
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(url),
        poolclass=pool.NullPool,
    )
    allow_older = context.get_x_argument(as_dictionary=True).get("allow_older") in ("1", "true", "yes")
    with engine.connect() as connection:
        context.configure(connection=connection, transactional_ddl=True)
        with context.begin_transaction():
            driver = connection.connection.driver_connection
            revision_before = schema.lock_for_upgrade(driver)
            context.run_migrations()
            schema.finish_upgrade(driver, revision_before, allow_older=allow_older)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

"""Alembic environment: raw-SQL migrations over a psycopg 3 connection.

The URL comes from DATABASE_URL (or `-x database_url=...`) and is handed to
libpq untouched, so Unix-socket URIs and URL-encoded passwords work exactly
as they do for the api and the worker.
"""

from __future__ import annotations

import os

import psycopg
from sqlalchemy import create_engine, pool

from alembic import context

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
    with engine.connect() as connection:
        context.configure(connection=connection, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

"""What a `julia` command does before its work: load settings and logging,
connect, refuse a transaction pooler or a schema this code cannot run on —
and the one error a command reports to the operator (`CommandError`)."""

from __future__ import annotations

import logging
import os

import psycopg
from psycopg.rows import dict_row

from app.core.config import Role, Settings, load_settings
from app.core.errors import JuliaError
from app.core.logs import setup_logging
from app.store import schema
from app.store.dburl import pooler_problem

logger = logging.getLogger(__name__)


class CommandError(JuliaError):
    """A command failed with a message for the operator."""


def command_settings(role: Role) -> Settings:
    """Settings for `role`, with logging set up; raises ConfigError when one is missing."""
    settings = load_settings(role)
    # A command's own output is what an operator reads; its INFO logs only when asked (LOG_LEVEL).
    setup_logging(settings.log_level if role != "cli" or os.environ.get("LOG_LEVEL") else "WARNING")
    return settings


def connect(settings: Settings) -> psycopg.Connection:
    """An autocommit connection with dict rows."""
    return psycopg.connect(settings.database_url, autocommit=True, row_factory=dict_row, connect_timeout=10)


def require_direct_connection(settings: Settings, role: str) -> None:
    """Raise CommandError when DATABASE_URL is invalid or a transaction pooler."""
    try:
        problem = pooler_problem(settings.database_url, role)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if problem:
        raise CommandError(f"refusing to start: {problem}")


def require_schema(settings: Settings) -> None:
    """Raise CommandError when the schema is behind this code; a schema ahead is logged and allowed."""
    try:
        status = schema.require_current_schema(settings.database_url)
    except schema.SchemaBehind as exc:
        raise CommandError(f"refusing to start: {exc}") from None
    if status.ahead:
        logger.warning(
            f"{status.detail}; starting anyway",
            extra={"action": "schema_ahead", "revision": status.current, "expected": status.expected},
        )
    else:
        logger.info("schema is current", extra={"action": "schema_ok", "revision": status.current})

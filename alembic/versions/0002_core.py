"""Core tables and functions: doctors, conversations, messages, outbox, pause state, guards.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op
from app.schema import read_sql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Function files are CREATE OR REPLACE; a later revision that changes one
# re-applies it.
FUNCTION_FILES = ("jobs.sql", "identity.sql", "status.sql", "guards.sql", "inbound.sql", "outbound.sql")


def upgrade() -> None:
    op.execute(read_sql("core_tables.sql"))
    for name in FUNCTION_FILES:
        op.execute(read_sql(name))


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS public.inbound_failures, public.outbox, public.interacoes,
            public.conversations, public.clientes, public.julia_status, public.feature_flags,
            public.app_settings CASCADE;
        """
    )

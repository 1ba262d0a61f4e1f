"""Core tables: doctors, conversations, messages, outbox, pause state, settings, flags.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen: what this revision does never changes once landed. Functions,
# views, triggers and grants are not here: they live in db/ (see db/MANIFEST)
# and are applied after every upgrade.
SQL = Path(__file__).with_suffix(".sql")


def upgrade() -> None:
    op.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS public.inbound_failures, public.outbox, public.interacoes,
            public.conversations, public.clientes, public.julia_status, public.feature_flags,
            public.app_settings CASCADE;
        """
    )

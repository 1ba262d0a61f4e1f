"""The ops console's audit: one row per operator action taken at /ops
(who, what, on what, why).

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# Frozen: what this revision does never changes once landed.
SQL = Path(__file__).with_suffix(".sql")


def upgrade() -> None:
    op.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS public.console_actions")

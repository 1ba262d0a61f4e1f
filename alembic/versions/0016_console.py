"""The ops console's audit: one row per operator action taken at /ops
(who, what, on what, why).

Revision ID: 0016
Revises: 0017
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0016"
# The number was reserved before 0017 (metrics) landed first; the chain is
# what counts: 0014 -> 0017 -> 0016. A revision landing after this one
# revises 0016.
down_revision = "0017"
branch_labels = None
depends_on = None

# Frozen: what this revision does never changes once landed.
SQL = Path(__file__).with_suffix(".sql")


def upgrade() -> None:
    op.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS public.console_actions")

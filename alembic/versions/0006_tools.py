"""Job failures (reply context and the recruiter tools are in db/replies.sql, db/tools.sql).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Frozen: what this revision does never changes once landed. Functions,
# views, triggers and grants are not here: they live in db/ (see db/MANIFEST)
# and are applied after every upgrade.
SQL = Path(__file__).with_suffix(".sql")


def upgrade() -> None:
    op.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    pass  # functions only; 0005 downgrade drops what they use

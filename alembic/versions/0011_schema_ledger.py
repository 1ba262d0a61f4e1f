"""The ledger of replaceable SQL (db/MANIFEST): which file was applied, and the schema fingerprints.

Revisions 0002-0010 once ran whatever db/ held when they ran; they now carry
frozen SQL for tables only, and `julia db upgrade` re-applies the replaceable
files after the revisions. The tables themselves never changed after they
landed (tests/migration/test_history.py compares databases built by earlier
commits with a fresh one), so no repair of them is needed here.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Frozen: what this revision does never changes once landed.
SQL = Path(__file__).with_suffix(".sql")


def upgrade() -> None:
    op.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS public.schema_fingerprints, public.schema_files")

"""The periodic-run log (health functions are in db/health.sql).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0004"
down_revision = "0003"
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
        DROP FUNCTION IF EXISTS public.health_report(text, text, text, text[]);
        DROP FUNCTION IF EXISTS public.required_relations();
        DROP FUNCTION IF EXISTS public.record_periodic_run(text, bigint, jsonb);
        DROP FUNCTION IF EXISTS public.prune_periodic_runs(interval);
        DROP TABLE IF EXISTS public.periodic_runs;
        """
    )

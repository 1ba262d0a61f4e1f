"""Health report, rate-limit status and the periodic-run log.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op
from app.schema import read_sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(read_sql("health.sql"))
    op.execute(read_sql("periodic.sql"))
    op.execute("SELECT public.secure_public_schema()")


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

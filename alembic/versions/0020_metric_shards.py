"""Observability: metric_counters gets a shard column (primary key metric,
labels, shard), so concurrent transactions bumping the same counter update
different rows; /metrics sums the shards.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# Frozen: what this revision does never changes once landed.
SQL = Path(__file__).with_suffix(".sql")


def upgrade() -> None:
    op.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    # Fold the shards back into one row per metric and label set first.
    op.execute(
        "CREATE TEMPORARY TABLE metric_totals ON COMMIT DROP AS"
        " SELECT metric, labels, sum(value) AS value, max(updated_at) AS updated_at"
        " FROM public.metric_counters GROUP BY metric, labels;"
        " DELETE FROM public.metric_counters;"
        " ALTER TABLE public.metric_counters DROP CONSTRAINT metric_counters_pkey;"
        " ALTER TABLE public.metric_counters DROP COLUMN shard;"
        " INSERT INTO public.metric_counters (metric, labels, value, updated_at)"
        " SELECT metric, labels, value, updated_at FROM metric_totals;"
        " ALTER TABLE public.metric_counters ADD CONSTRAINT metric_counters_pkey PRIMARY KEY (metric, labels)"
    )

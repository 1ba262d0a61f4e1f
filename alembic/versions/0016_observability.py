"""Observability: llm_calls (one row per model call of a reply job: model,
tokens, outcome, times; read by /metrics and `julia trace`) and
metric_counters (monotonic counters kept by SQL triggers, so /metrics is
one cheap query whatever the number of workers).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0016"
# After 0015 (English names).
down_revision = "0015"
branch_labels = None
depends_on = None

# Frozen: what this revision does never changes once landed.
SQL = Path(__file__).with_suffix(".sql")


def upgrade() -> None:
    op.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    # db/observability.sql's counting triggers go too (the outbox one names outbox columns an
    # earlier downgrade drops); the next upgrade re-creates them with the tables.
    op.execute(
        "DROP TRIGGER IF EXISTS outbox_count_in_metric_counters ON public.outbox;"
        " DROP TRIGGER IF EXISTS job_failures_count_in_metric_counters ON public.job_failures;"
        " DROP TRIGGER IF EXISTS inbound_failures_count_in_metric_counters ON public.inbound_failures;"
        " DROP TABLE IF EXISTS public.metric_counters, public.llm_calls CASCADE"
    )

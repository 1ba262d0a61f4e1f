"""Outreach tables: send counters, campaigns, delivery events and the outbox/clientes/conversations
columns they need (the send gate and the views are in db/outreach.sql).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0009"
down_revision = "0008"
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
        DROP VIEW IF EXISTS public.campaign_metrics, public.campaign_sends;
        DROP INDEX IF EXISTS public.outbox_evolution_id_idx, public.outbox_proactive_sent_idx,
            public.outbox_one_follow_up_per_conversation;
        ALTER TABLE public.outbox DROP COLUMN IF EXISTS campanha_id, DROP COLUMN IF EXISTS dispatched_at,
            DROP COLUMN IF EXISTS refusal, DROP COLUMN IF EXISTS delivery_status,
            DROP COLUMN IF EXISTS delivered_at, DROP COLUMN IF EXISTS read_at;
        ALTER TABLE public.clientes DROP COLUMN IF EXISTS bloqueado_em, DROP COLUMN IF EXISTS bloqueio_motivo,
            DROP COLUMN IF EXISTS ultimo_contato_em;
        ALTER TABLE public.conversations DROP COLUMN IF EXISTS interesse_em, DROP COLUMN IF EXISTS follow_up_em;
        DROP TABLE IF EXISTS public.delivery_events, public.campanhas, public.send_counters CASCADE;
        """
    )

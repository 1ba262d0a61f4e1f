"""WhatsApp numbers and the send policy as data: numbers (instance, state,
pause, caps, warm-up, hours), per-number send counters, the policy row,
an audit of policy and number changes, number health events and instances
Julia does not know; outbox/conversations/clientes/delivery_events learn
which number they belong to.

Data fix: the first number is the instance the inbound archive has seen
most recently (if any), and today's global counters become its counters.
Bootstrap (julia db bootstrap / worker start) creates EVOLUTION_INSTANCE
when no number exists.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Frozen: what this revision does never changes once landed.
SQL = Path(__file__).with_suffix(".sql")


def upgrade() -> None:
    op.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    # CASCADE: db/numbers.sql functions take whatsapp_numbers rows; the next upgrade re-creates them.
    op.execute(
        """
        ALTER TABLE public.outbox DROP COLUMN IF EXISTS number_id;
        ALTER TABLE public.conversations DROP COLUMN IF EXISTS number_id;
        ALTER TABLE public.clientes DROP COLUMN IF EXISTS number_id;
        ALTER TABLE public.delivery_events DROP COLUMN IF EXISTS instance;
        DROP TABLE IF EXISTS public.unknown_instances, public.number_health_events, public.send_policy_changes,
            public.number_send_counters, public.send_policy_settings, public.whatsapp_numbers CASCADE;
        """
    )

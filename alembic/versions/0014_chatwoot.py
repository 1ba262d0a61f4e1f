"""Chatwoot that survives the real thing: media on outbox rows (an agent's
attachment goes to WhatsApp through sendMedia) and private notes to agents
as mirror events (an attachment refused, a reply delivered after an outage).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# Frozen: what this revision does never changes once landed.
SQL = Path(__file__).with_suffix(".sql")


def upgrade() -> None:
    op.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    op.execute(
        "ALTER TABLE public.chatwoot_eventos DROP CONSTRAINT IF EXISTS chatwoot_eventos_kind_check;"
        " DELETE FROM public.chatwoot_eventos WHERE kind = 'note';"
        " ALTER TABLE public.chatwoot_eventos ADD CONSTRAINT chatwoot_eventos_kind_check"
        " CHECK (kind IN ('handoff', 'handback'));"
        " ALTER TABLE public.outbox DROP COLUMN IF EXISTS media"
    )

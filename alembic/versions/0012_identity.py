"""One doctor, one record: the confirmed WhatsApp form, the not-on-WhatsApp mark,
the phone-key index of the identity rule (db/identity.sql) and the merge log.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# Frozen: what this revision does never changes once landed.
SQL = Path(__file__).with_suffix(".sql")


def upgrade() -> None:
    op.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS public.clientes_fusoes;
        DROP INDEX IF EXISTS public.clientes_phone_key_idx;
        ALTER TABLE public.clientes DROP COLUMN IF EXISTS whatsapp_numero,
            DROP COLUMN IF EXISTS whatsapp_verificado_em, DROP COLUMN IF EXISTS sem_whatsapp_em;
        """
    )

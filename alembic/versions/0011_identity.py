"""One doctor, one record: the send address WhatsApp confirmed, the
not-on-WhatsApp mark, the phone-key index the identity rule (db/identity.sql)
matches through, and the log of merged duplicate rows.

The DDL below is frozen history (idempotent, so a re-run changes nothing).
Existing duplicates are not merged here: an operator reviews them with
`julia doctors merge --dry-run` and folds them with `--yes`.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op
from app.schema import read_sql, read_sql_functions

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Replaceable files whose functions changed with this revision, re-applied
# whole; outreach.sql also holds frozen table DDL, so only its functions.
FUNCTION_FILES = ("identity.sql", "inbound.sql", "tools.sql", "importer.sql", "health.sql")
FUNCTIONS_OF = ("outreach.sql",)

UPGRADE = """
ALTER TABLE public.clientes
    ADD COLUMN IF NOT EXISTS whatsapp_numero        text CHECK (whatsapp_numero ~ '^[0-9]{8,15}$'),
    ADD COLUMN IF NOT EXISTS whatsapp_verificado_em timestamptz,
    ADD COLUMN IF NOT EXISTS sem_whatsapp_em        timestamptz;

CREATE INDEX IF NOT EXISTS clientes_phone_key_idx ON public.clientes (public.phone_key(telefone));

CREATE TABLE IF NOT EXISTS public.clientes_fusoes (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mantido_id     bigint NOT NULL,
    removido_id    bigint NOT NULL UNIQUE,
    motivo         text NOT NULL,
    removido       jsonb NOT NULL,
    linhas_movidas integer NOT NULL DEFAULT 0,
    fundido_em     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS clientes_fusoes_mantido_idx ON public.clientes_fusoes (mantido_id);
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    for name in FUNCTION_FILES:
        op.execute(read_sql(name))
    for name in FUNCTIONS_OF:
        op.execute(read_sql_functions(name))
    op.execute("SELECT public.secure_public_schema()")


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS public.clientes_fusoes;
        DROP INDEX IF EXISTS public.clientes_phone_key_idx;
        ALTER TABLE public.clientes DROP COLUMN IF EXISTS whatsapp_numero,
            DROP COLUMN IF EXISTS whatsapp_verificado_em, DROP COLUMN IF EXISTS sem_whatsapp_em;
        """
    )

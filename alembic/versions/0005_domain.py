"""Domain: specialties, hospitals, shifts (vagas), knowledge, rules, prompts, metrics.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op
from app.schema import read_sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(read_sql("domain_tables.sql"))
    op.execute(read_sql("metrics.sql"))
    op.execute("SELECT public.secure_public_schema()")


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS public.metricas_conversa, public.prompts, public.diretrizes,
            public.conhecimento_julia, public.vagas, public.formas_recebimento, public.tipos_vaga,
            public.periodos, public.setores, public.hospitais_alias, public.hospitais,
            public.especialidades_alias CASCADE;
        ALTER TABLE public.clientes DROP COLUMN IF EXISTS crm, DROP COLUMN IF EXISTS especialidade_id,
            DROP COLUMN IF EXISTS regiao, DROP COLUMN IF EXISTS cidade, DROP COLUMN IF EXISTS preferencias,
            DROP COLUMN IF EXISTS tags, DROP COLUMN IF EXISTS opt_out_motivo;
        DROP TABLE IF EXISTS public.especialidades CASCADE;
        ALTER TABLE public.conversations DROP COLUMN IF EXISTS handoff_ativo, DROP COLUMN IF EXISTS handoff_motivo,
            DROP COLUMN IF EXISTS handoff_em, DROP COLUMN IF EXISTS julia_pausada_ate;
        DROP FUNCTION IF EXISTS public.count_interacao_in_metrics() CASCADE;
        DROP FUNCTION IF EXISTS public.normalize_text(text);
        DROP TEXT SEARCH CONFIGURATION IF EXISTS public.portuguese_unaccent;
        """
    )

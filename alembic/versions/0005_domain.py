"""Domain: specialties, hospitals, shifts (vagas), knowledge, rules, prompts, metrics.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0005"
down_revision = "0004"
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

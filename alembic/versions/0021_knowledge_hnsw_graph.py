"""Knowledge retrieval: the HNSW index of the embeddings rebuilt with
ef_construction 512, for recall at hnsw.ef_search 120.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# Frozen: what this revision does never changes once landed.
SQL = Path(__file__).with_suffix(".sql")


def upgrade() -> None:
    op.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    op.execute(
        "DROP INDEX IF EXISTS public.conhecimento_embedding_idx;"
        " CREATE INDEX conhecimento_embedding_idx ON public.conhecimento_julia"
        " USING hnsw (embedding extensions.vector_cosine_ops) WITH (m = 16, ef_construction = 256)"
    )

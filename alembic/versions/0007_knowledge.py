"""Knowledge retrieval: hybrid (pgvector + Portuguese full-text) search.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op
from app.schema import read_sql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(read_sql("knowledge.sql"))
    op.execute("SELECT public.secure_public_schema()")


def downgrade() -> None:
    pass  # functions only

"""Importing reference and content data (julia db import).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op
from app.schema import read_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(read_sql("importer.sql"))
    op.execute("SELECT public.secure_public_schema()")


def downgrade() -> None:
    pass  # functions only

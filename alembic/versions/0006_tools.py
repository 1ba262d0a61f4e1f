"""Reply context (silence, pending message, profile, rules, prompt) and the recruiter tools.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op
from app.schema import read_sql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(read_sql("failures.sql"))
    op.execute(read_sql("replies.sql"))
    op.execute(read_sql("tools.sql"))
    op.execute("SELECT public.secure_public_schema()")


def downgrade() -> None:
    pass  # functions only; 0005 downgrade drops what they use

"""Supabase-linter clean schema: RLS, API-role revokes, fixed search_path, lint_schema().

Installs `public.lint_schema()` (db/lint.sql) and `public.secure_public_schema()`
(db/security.sql) and calls the latter. Later migrations that add tables or
functions end with `SELECT public.secure_public_schema()`.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op
from app.schema import read_sql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(read_sql("lint.sql"))
    op.execute(read_sql("security.sql"))


def downgrade() -> None:
    # Only the two functions go: RLS, the revokes and the fixed search_paths
    # stay, since undoing them would re-open tables and queues to the Data
    # API. Upgrading again is safe (security.sql is idempotent).
    op.execute(
        """
        DROP FUNCTION IF EXISTS public.secure_public_schema();
        DROP FUNCTION IF EXISTS public.lint_schema();
        """
    )

"""Security (RLS, API-role revokes, fixed search_path) — now db/security.sql, applied after every upgrade.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen. This revision once applied db/ files that hold only functions
# (lint.sql, security.sql); those are replaceable objects now, applied after every upgrade
# from db/MANIFEST, so the revision itself does nothing.


def upgrade() -> None:
    pass


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

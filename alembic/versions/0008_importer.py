"""Importing reference and content data — functions only, now in db/importer.sql.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Frozen. This revision once applied db/ files that hold only functions
# (importer.sql); those are replaceable objects now, applied after every upgrade
# from db/MANIFEST, so the revision itself does nothing.


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass  # functions only

"""Knowledge retrieval — functions only, now in db/knowledge.sql.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Frozen. This revision once applied db/ files that hold only functions
# (knowledge.sql); those are replaceable objects now, applied after every upgrade
# from db/MANIFEST, so the revision itself does nothing.


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass  # functions only

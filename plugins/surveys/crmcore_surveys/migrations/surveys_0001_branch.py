"""Start the surveys branch.

Revision ID: surveys_0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

revision = "surveys_0001"
down_revision = None
branch_labels = ("surveys",)
depends_on = "core_0001"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

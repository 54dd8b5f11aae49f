"""Start the accounting_bridge branch.

Revision ID: accounting_bridge_0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

revision = "accounting_bridge_0001"
down_revision = None
branch_labels = ("accounting_bridge",)
depends_on = "core_0001"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

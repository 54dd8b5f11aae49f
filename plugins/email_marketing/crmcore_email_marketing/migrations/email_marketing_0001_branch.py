"""Start the email_marketing branch.

Revision ID: email_marketing_0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

revision = "email_marketing_0001"
down_revision = None
branch_labels = ("email_marketing",)
depends_on = "core_0001"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

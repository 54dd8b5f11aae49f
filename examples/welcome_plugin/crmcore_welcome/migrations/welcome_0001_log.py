"""The welcome plugin's log table.

Revision ID: welcome_0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crmcore.db

revision = "welcome_0001"
down_revision = None
branch_labels = ("welcome",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "welcome_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("queued_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_welcome_log_contact_id_contact"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_welcome_log")),
        sa.UniqueConstraint("contact_id", name=op.f("uq_welcome_log_contact_id")),
    )


def downgrade() -> None:
    op.drop_table("welcome_log")

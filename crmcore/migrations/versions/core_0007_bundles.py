"""What vendor bundles applied: one row per bundle item.

Revision ID: core_0007
Revises: core_0006
Create Date: 2026-11-29 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crmcore.db import UTCDateTime

revision = "core_0007"
down_revision = "core_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bundle_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bundle", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=60), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("data_checksum", sa.String(length=64), nullable=False),
        sa.Column("state_checksum", sa.String(length=64), nullable=False),
        sa.Column("applied_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bundle_record")),
        sa.UniqueConstraint("bundle", "kind", "key", name=op.f("uq_bundle_record_bundle_kind_key")),
    )


def downgrade() -> None:
    op.drop_table("bundle_record")

"""The results' daily rollup, backfilled from the existing invitations and responses.

Revision ID: surveys_0003
Revises: surveys_0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import context, op

import crmcore.db

revision = "surveys_0003"
down_revision = "surveys_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "surveys_daily",
        sa.Column("id", crmcore.db.BigID, nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("dimension", sa.String(length=10), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("product", sa.String(length=120), nullable=True),
        sa.Column("channel", sa.String(length=40), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        *(sa.Column(name, sa.Integer(), nullable=False)
          for name in ("invitations", "answered", "responses", "high", "middle", "low", "satisfied", "score_total")),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["surveys_survey.id"], name=op.f("fk_surveys_daily_survey_id_surveys_survey"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["crm_user.id"], name=op.f("fk_surveys_daily_agent_id_crm_user"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys_daily")),
    )  # fmt: skip
    op.create_index(
        "ix_surveys_daily_key",
        "surveys_daily",
        ["survey_id", "dimension", "day", "agent_id", "product", "channel", "language"],
    )
    op.create_table(
        "surveys_rollup_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("rebuilt_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys_rollup_state")),
    )
    # backfill in the zone of the CRM being upgraded (results cut days in that zone)
    from crmcore_surveys.rollup import rebuild

    crm = context.config.attributes.get("crm")
    zone = crm.settings.timezone if crm is not None else "UTC"
    rebuild(op.get_bind(), zone, datetime.now(UTC))


def downgrade() -> None:
    op.drop_table("surveys_rollup_state")
    op.drop_index("ix_surveys_daily_key", table_name="surveys_daily")
    op.drop_table("surveys_daily")

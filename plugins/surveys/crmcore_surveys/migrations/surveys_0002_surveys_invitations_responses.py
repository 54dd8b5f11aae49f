"""Surveys, triggers, invitations, responses and answers.

Revision ID: surveys_0002
Revises: surveys_0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crmcore.db

revision = "surveys_0002"
down_revision = "surveys_0001"
branch_labels = None
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "surveys_survey",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("headline_kind", sa.String(length=10), nullable=True),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("activated_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("closed_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys_survey")),
        sa.UniqueConstraint("key", name=op.f("uq_surveys_survey_key")),
    )
    op.create_table(
        "surveys_trigger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("hook", sa.String(length=120), nullable=False),
        sa.Column("delay_seconds", sa.Integer(), nullable=False),
        sa.Column("sample_rate", sa.Float(), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys_survey.id"],
            name=op.f("fk_surveys_trigger_survey_id_surveys_survey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys_trigger")),
    )
    op.create_index("ix_surveys_trigger_hook", "surveys_trigger", ["hook", "survey_id"])
    op.create_table(
        "surveys_invitation",
        sa.Column("id", crmcore.db.BigID, nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", crmcore.db.BigID, nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=160), nullable=False),
        sa.Column("subject_kind", sa.String(length=40), nullable=True),
        sa.Column("subject_id", crmcore.db.BigID, nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("product", sa.String(length=120), nullable=True),
        sa.Column("channel", sa.String(length=40), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("send_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("sent_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("skip_reason", sa.String(length=120), nullable=True),
        sa.Column("responded", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys_survey.id"],
            name=op.f("fk_surveys_invitation_survey_id_surveys_survey"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_surveys_invitation_contact_id_contact"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["crm_user.id"], name=op.f("fk_surveys_invitation_agent_id_crm_user"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys_invitation")),
    )
    op.create_index("ix_surveys_invitation_contact", "surveys_invitation", ["contact_id", "created_at"])
    op.create_index(
        "ix_surveys_invitation_survey_sent", "surveys_invitation", ["survey_id", "status", "sent_at", "responded", "agent_id"]
    )
    op.create_table(
        "surveys_response",
        sa.Column("id", crmcore.db.BigID, nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("invitation_id", crmcore.db.BigID, nullable=True),
        sa.Column("invitation_hash", sa.String(length=64), nullable=True),
        sa.Column("contact_id", crmcore.db.BigID, nullable=True),
        sa.Column("subject_kind", sa.String(length=40), nullable=True),
        sa.Column("subject_id", crmcore.db.BigID, nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("product", sa.String(length=120), nullable=True),
        sa.Column("channel", sa.String(length=40), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("score", sa.SmallInteger(), nullable=True),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("feedback_id", crmcore.db.BigID, nullable=True),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("submitted_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys_survey.id"],
            name=op.f("fk_surveys_response_survey_id_surveys_survey"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["surveys_invitation.id"],
            name=op.f("fk_surveys_response_invitation_id_surveys_invitation"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_surveys_response_contact_id_contact"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["crm_user.id"], name=op.f("fk_surveys_response_agent_id_crm_user"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["feedback_id"], ["feedback.id"], name=op.f("fk_surveys_response_feedback_id_feedback"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys_response")),
        sa.UniqueConstraint("invitation_id", name=op.f("uq_surveys_response_invitation_id")),
        sa.UniqueConstraint("invitation_hash", name=op.f("uq_surveys_response_invitation_hash")),
    )
    op.create_index("ix_surveys_response_survey_time", "surveys_response", ["survey_id", "submitted_at", "score", "agent_id"])
    op.create_index("ix_surveys_response_contact", "surveys_response", ["contact_id", "submitted_at"])
    op.create_table(
        "surveys_answer",
        sa.Column("id", crmcore.db.BigID, nullable=False),
        sa.Column("response_id", crmcore.db.BigID, nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("question", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=True),
        sa.Column("choice", sa.String(length=120), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["surveys_response.id"],
            name=op.f("fk_surveys_answer_response_id_surveys_response"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys_survey.id"],
            name=op.f("fk_surveys_answer_survey_id_surveys_survey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys_answer")),
    )
    op.create_index("ix_surveys_answer_response", "surveys_answer", ["response_id"])
    op.create_index("ix_surveys_answer_survey_question", "surveys_answer", ["survey_id", "question", "score"])


def downgrade() -> None:
    op.drop_table("surveys_answer")
    op.drop_table("surveys_response")
    op.drop_table("surveys_invitation")
    op.drop_table("surveys_trigger")
    op.drop_table("surveys_survey")

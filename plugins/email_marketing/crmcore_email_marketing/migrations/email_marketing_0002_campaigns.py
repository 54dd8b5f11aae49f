"""Campaigns, templates, A/B variants, recipients, link clicks, suppression, conversions, sequences.

Revision ID: email_marketing_0002
Revises: email_marketing_0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crmcore.db

revision = "email_marketing_0002"
down_revision = "email_marketing_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_marketing_sequence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("trigger", sa.String(length=120), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("stop_on", sa.JSON(), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_marketing_sequence")),
        sa.UniqueConstraint("name", name=op.f("uq_email_marketing_sequence_name")),
    )
    with op.batch_alter_table("email_marketing_sequence", schema=None) as batch_op:
        batch_op.create_index("ix_email_marketing_sequence_trigger", ["trigger", "active"], unique=False)

    op.create_table(
        "email_marketing_template",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("layout", sa.String(length=200), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_marketing_template")),
        sa.UniqueConstraint("name", name=op.f("uq_email_marketing_template_name")),
    )
    op.create_table(
        "email_marketing_sequence_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sequence_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("delay_minutes", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["sequence_id"],
            ["email_marketing_sequence.id"],
            name=op.f("fk_email_marketing_sequence_step_sequence_id_email_marketing_sequence"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["email_marketing_template.id"],
            name=op.f("fk_email_marketing_sequence_step_template_id_email_marketing_template"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_marketing_sequence_step")),
        sa.UniqueConstraint(
            "sequence_id", "position", name=op.f("uq_email_marketing_sequence_step_sequence_id_position")
        ),
    )
    op.create_table(
        "email_marketing_campaign",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("goal", sa.String(length=255), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("segment", sa.String(length=120), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("budget", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("actual_cost", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("send_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("local_send_at", sa.String(length=16), nullable=True),
        sa.Column("ab_metric", sa.String(length=10), nullable=True),
        sa.Column("ab_sample_percent", sa.Integer(), nullable=False),
        sa.Column("ab_wait_minutes", sa.Integer(), nullable=False),
        sa.Column("ab_winner", sa.String(length=10), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("fill_cursor", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("fill_done", sa.Boolean(), nullable=False),
        sa.Column("batches", sa.Integer(), nullable=False),
        sa.Column("next_batch_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("started_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("started_on", sa.Date(), nullable=True),
        sa.Column("finished_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["crm_user.id"], name=op.f("fk_email_marketing_campaign_owner_id_crm_user")
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["email_marketing_template.id"],
            name=op.f("fk_email_marketing_campaign_template_id_email_marketing_template"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_marketing_campaign")),
        sa.UniqueConstraint("name", name=op.f("uq_email_marketing_campaign_name")),
    )
    with op.batch_alter_table("email_marketing_campaign", schema=None) as batch_op:
        batch_op.create_index("ix_email_marketing_campaign_state", ["state", "send_at"], unique=False)

    op.create_table(
        "email_marketing_enrollment",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sequence_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("next_position", sa.Integer(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("started_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("ended_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("stop_reason", sa.String(length=120), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_email_marketing_enrollment_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sequence_id"],
            ["email_marketing_sequence.id"],
            name=op.f("fk_email_marketing_enrollment_sequence_id_email_marketing_sequence"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_marketing_enrollment")),
        sa.UniqueConstraint(
            "sequence_id", "contact_id", name=op.f("uq_email_marketing_enrollment_sequence_id_contact_id")
        ),
    )
    op.create_table(
        "email_marketing_recipient",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("variant", sa.String(length=10), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("batch", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("subject", sa.String(length=998), nullable=True),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("sent_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("opened_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("clicked_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("last_engaged_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("opens", sa.Integer(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("unsubscribed_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("bounced_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("complained_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["email_marketing_campaign.id"],
            name=op.f("fk_email_marketing_recipient_campaign_id_email_marketing_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_email_marketing_recipient_contact_id_contact"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_marketing_recipient")),
        sa.UniqueConstraint(
            "campaign_id", "contact_id", name=op.f("uq_email_marketing_recipient_campaign_id_contact_id")
        ),
    )
    with op.batch_alter_table("email_marketing_recipient", schema=None) as batch_op:
        batch_op.create_index("ix_email_marketing_recipient_batch", ["campaign_id", "batch", "status"], unique=False)
        batch_op.create_index("ix_email_marketing_recipient_contact", ["contact_id", "last_engaged_at"], unique=False)
        batch_op.create_index("ix_email_marketing_recipient_message", ["message_id"], unique=False)
        batch_op.create_index("ix_email_marketing_recipient_status", ["campaign_id", "status"], unique=False)

    op.create_table(
        "email_marketing_suppression",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["email_marketing_campaign.id"],
            name=op.f("fk_email_marketing_suppression_campaign_id_email_marketing_campaign"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_marketing_suppression")),
        sa.UniqueConstraint("email", name=op.f("uq_email_marketing_suppression_email")),
    )
    op.create_table(
        "email_marketing_variant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=10), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["email_marketing_campaign.id"],
            name=op.f("fk_email_marketing_variant_campaign_id_email_marketing_campaign"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_marketing_variant")),
        sa.UniqueConstraint("campaign_id", "label", name=op.f("uq_email_marketing_variant_campaign_id_label")),
    )
    op.create_table(
        "email_marketing_link_click",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("url_hash", sa.String(length=40), nullable=False),
        sa.Column("occurred_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["email_marketing_campaign.id"],
            name=op.f("fk_email_marketing_link_click_campaign_id_email_marketing_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["email_marketing_recipient.id"],
            name=op.f("fk_email_marketing_link_click_recipient_id_email_marketing_recipient"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_marketing_link_click")),
    )
    with op.batch_alter_table("email_marketing_link_click", schema=None) as batch_op:
        batch_op.create_index("ix_email_marketing_link_click_campaign", ["campaign_id", "url_hash"], unique=False)

    op.create_table(
        "email_marketing_conversion",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("purchase_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("occurred_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["email_marketing_campaign.id"],
            name=op.f("fk_email_marketing_conversion_campaign_id_email_marketing_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_email_marketing_conversion_contact_id_contact"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchase.id"],
            name=op.f("fk_email_marketing_conversion_purchase_id_purchase"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["email_marketing_recipient.id"],
            name=op.f("fk_email_marketing_conversion_recipient_id_email_marketing_recipient"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_marketing_conversion")),
        sa.UniqueConstraint("purchase_id", name=op.f("uq_email_marketing_conversion_purchase_id")),
    )
    with op.batch_alter_table("email_marketing_conversion", schema=None) as batch_op:
        batch_op.create_index("ix_email_marketing_conversion_campaign", ["campaign_id", "occurred_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("email_marketing_conversion", schema=None) as batch_op:
        batch_op.drop_index("ix_email_marketing_conversion_campaign")

    op.drop_table("email_marketing_conversion")
    with op.batch_alter_table("email_marketing_link_click", schema=None) as batch_op:
        batch_op.drop_index("ix_email_marketing_link_click_campaign")

    op.drop_table("email_marketing_link_click")
    op.drop_table("email_marketing_variant")
    op.drop_table("email_marketing_suppression")
    with op.batch_alter_table("email_marketing_recipient", schema=None) as batch_op:
        batch_op.drop_index("ix_email_marketing_recipient_status")
        batch_op.drop_index("ix_email_marketing_recipient_message")
        batch_op.drop_index("ix_email_marketing_recipient_contact")
        batch_op.drop_index("ix_email_marketing_recipient_batch")

    op.drop_table("email_marketing_recipient")
    op.drop_table("email_marketing_enrollment")
    with op.batch_alter_table("email_marketing_campaign", schema=None) as batch_op:
        batch_op.drop_index("ix_email_marketing_campaign_state")

    op.drop_table("email_marketing_campaign")
    op.drop_table("email_marketing_sequence_step")
    op.drop_table("email_marketing_template")
    with op.batch_alter_table("email_marketing_sequence", schema=None) as batch_op:
        batch_op.drop_index("ix_email_marketing_sequence_trigger")

    op.drop_table("email_marketing_sequence")

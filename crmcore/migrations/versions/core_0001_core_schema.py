"""core schema

Revision ID: core_0001
Revises:
Create Date: 2026-11-28 23:24:43.007129
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crmcore.db

revision = "core_0001"
down_revision = None
branch_labels = ("core",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_delivery",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_delivery")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_mail_delivery_idempotency_key")),
    )
    op.create_index(op.f("ix_mail_delivery_recipient"), "mail_delivery", ["recipient"], unique=False)
    op.create_table(
        "ad_spend",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("campaign", sa.String(length=255), nullable=False),
        sa.Column("ad", sa.String(length=255), nullable=False),
        sa.Column("affiliate", sa.String(length=255), nullable=True),
        sa.Column("impressions", sa.Integer(), nullable=False),
        sa.Column("platform_clicks", sa.Integer(), nullable=False),
        sa.Column("spend", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("imported_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ad_spend")),
        sa.UniqueConstraint("day", "source", "campaign", "ad", name=op.f("uq_ad_spend_day_source_campaign_ad")),
    )
    op.create_index("ix_ad_spend_campaign_day", "ad_spend", ["campaign", "day"], unique=False)
    op.create_table(
        "custom_field",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=True),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_field")),
        sa.UniqueConstraint("entity", "name", name=op.f("uq_custom_field_entity_name")),
    )
    op.create_table(
        "job",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("handler", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("due_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("available_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("locked_by", sa.String(length=120), nullable=True),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("finished_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_job_idempotency_key")),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index("ix_job_state_available", ["state", "available_at"], unique=False)

    op.create_table(
        "job_worker",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("backend", sa.String(length=20), nullable=False),
        sa.Column("started_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("seen_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_worker")),
    )
    op.create_table(
        "organization",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=True),
        sa.Column("industry", sa.String(length=120), nullable=True),
        sa.Column("size_band", sa.String(length=40), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization")),
    )
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_organization_domain"), ["domain"], unique=False)
        batch_op.create_index(batch_op.f("ix_organization_name"), ["name"], unique=False)

    op.create_table(
        "pipeline",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline")),
        sa.UniqueConstraint("name", name=op.f("uq_pipeline_name")),
    )
    op.create_table(
        "product",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("category", sa.String(length=120), nullable=True),
        sa.Column("unit_price", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product")),
        sa.UniqueConstraint("sku", name=op.f("uq_product_sku")),
    )
    op.create_table(
        "tag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tag")),
        sa.UniqueConstraint("name", name=op.f("uq_tag_name")),
    )
    op.create_table(
        "team",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team")),
        sa.UniqueConstraint("name", name=op.f("uq_team_name")),
    )
    op.create_table(
        "crm_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"], name=op.f("fk_crm_user_team_id_team")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_user")),
        sa.UniqueConstraint("email", name=op.f("uq_crm_user_email")),
        sa.UniqueConstraint("external_id", name=op.f("uq_crm_user_external_id")),
    )
    with op.batch_alter_table("crm_user", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_crm_user_team_id"), ["team_id"], unique=False)

    op.create_table(
        "pipeline_stage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("probability", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["pipeline.id"], name=op.f("fk_pipeline_stage_pipeline_id_pipeline"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_stage")),
        sa.UniqueConstraint("pipeline_id", "key", name=op.f("uq_pipeline_stage_pipeline_id_key")),
    )
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("occurred_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=120), nullable=False),
        sa.Column("entity", sa.String(length=60), nullable=False),
        sa.Column("entity_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["actor_id"], ["crm_user.id"], name=op.f("fk_audit_entry_actor_id_crm_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entry")),
    )
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.create_index("ix_audit_entry_entity", ["entity", "entity_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_entry_occurred_at"), ["occurred_at"], unique=False)

    op.create_table(
        "contact",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("email_normalized", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=64), nullable=True),
        sa.Column("phone_normalized", sa.String(length=32), nullable=True),
        sa.Column("first_name", sa.String(length=120), nullable=True),
        sa.Column("last_name", sa.String(length=120), nullable=True),
        sa.Column("title", sa.String(length=120), nullable=True),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("stage_changed_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=120), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("region", sa.String(length=120), nullable=True),
        sa.Column("city", sa.String(length=120), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("do_not_contact", sa.Boolean(), nullable=False),
        sa.Column("do_not_track", sa.Boolean(), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("last_activity_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("merged_into_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("erased_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["merged_into_id"], ["contact.id"], name=op.f("fk_contact_merged_into_id_contact")),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organization.id"], name=op.f("fk_contact_organization_id_organization")
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["crm_user.id"], name=op.f("fk_contact_owner_id_crm_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact")),
        sa.UniqueConstraint("email_normalized", name=op.f("uq_contact_email_normalized")),
    )
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.create_index("ix_contact_created_at", ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_contact_organization_id"), ["organization_id"], unique=False)
        batch_op.create_index("ix_contact_owner_stage", ["owner_id", "stage"], unique=False)
        batch_op.create_index(batch_op.f("ix_contact_phone_normalized"), ["phone_normalized"], unique=False)
        batch_op.create_index("ix_contact_stage_last_activity", ["stage", "last_activity_at"], unique=False)

    op.create_table(
        "contact_tag",
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tag_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_contact_tag_contact_id_contact"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["tag_id"], ["tag.id"], name=op.f("fk_contact_tag_tag_id_tag"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("contact_id", "tag_id", name=op.f("pk_contact_tag")),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("source", sa.String(length=60), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("subject_kind", sa.String(length=60), nullable=True),
        sa.Column("subject_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_feedback_contact_id_contact"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index("ix_feedback_contact_time", ["contact_id", "created_at"], unique=False)

    op.create_table(
        "lifecycle_change",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("from_stage", sa.String(length=20), nullable=True),
        sa.Column("to_stage", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("occurred_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["actor_id"], ["crm_user.id"], name=op.f("fk_lifecycle_change_actor_id_crm_user")),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_lifecycle_change_contact_id_contact"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifecycle_change")),
    )
    with op.batch_alter_table("lifecycle_change", schema=None) as batch_op:
        batch_op.create_index("ix_lifecycle_change_contact", ["contact_id", "occurred_at"], unique=False)
        batch_op.create_index("ix_lifecycle_change_to_stage", ["to_stage", "occurred_at"], unique=False)

    op.create_table(
        "opportunity",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("stage_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("expected_close_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("lost_reason", sa.String(length=255), nullable=True),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("stage_entered_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("closed_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_opportunity_contact_id_contact"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organization.id"], name=op.f("fk_opportunity_organization_id_organization")
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["crm_user.id"], name=op.f("fk_opportunity_owner_id_crm_user")),
        sa.ForeignKeyConstraint(["pipeline_id"], ["pipeline.id"], name=op.f("fk_opportunity_pipeline_id_pipeline")),
        sa.ForeignKeyConstraint(
            ["stage_id"], ["pipeline_stage.id"], name=op.f("fk_opportunity_stage_id_pipeline_stage")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunity")),
    )
    with op.batch_alter_table("opportunity", schema=None) as batch_op:
        batch_op.create_index("ix_opportunity_contact", ["contact_id"], unique=False)
        batch_op.create_index("ix_opportunity_owner_status", ["owner_id", "status"], unique=False)
        batch_op.create_index("ix_opportunity_status_stage", ["status", "stage_id"], unique=False)

    op.create_table(
        "touchpoint",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("occurred_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=True),
        sa.Column("medium", sa.String(length=255), nullable=True),
        sa.Column("campaign", sa.String(length=255), nullable=True),
        sa.Column("ad", sa.String(length=255), nullable=True),
        sa.Column("affiliate", sa.String(length=255), nullable=True),
        sa.Column("referrer", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("utm_source", sa.String(length=255), nullable=True),
        sa.Column("utm_medium", sa.String(length=255), nullable=True),
        sa.Column("utm_campaign", sa.String(length=255), nullable=True),
        sa.Column("utm_term", sa.String(length=255), nullable=True),
        sa.Column("utm_content", sa.String(length=255), nullable=True),
        sa.Column("click_id", sa.String(length=255), nullable=True),
        sa.Column("click_id_kind", sa.String(length=16), nullable=True),
        sa.Column("value", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_touchpoint_contact_id_contact"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["crm_user.id"], name=op.f("fk_touchpoint_user_id_crm_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_touchpoint")),
        sa.UniqueConstraint("external_id", name=op.f("uq_touchpoint_external_id")),
    )
    with op.batch_alter_table("touchpoint", schema=None) as batch_op:
        batch_op.create_index("ix_touchpoint_ad_kind", ["ad", "kind"], unique=False)
        batch_op.create_index("ix_touchpoint_affiliate_kind", ["affiliate", "kind"], unique=False)
        batch_op.create_index("ix_touchpoint_campaign_kind", ["campaign", "kind"], unique=False)
        batch_op.create_index("ix_touchpoint_contact_time", ["contact_id", "occurred_at"], unique=False)
        batch_op.create_index("ix_touchpoint_kind_time", ["kind", "occurred_at"], unique=False)

    op.create_table(
        "activity",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("due_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("remind_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("done_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("opportunity_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_activity_contact_id_contact"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunity.id"],
            name=op.f("fk_activity_opportunity_id_opportunity"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["crm_user.id"], name=op.f("fk_activity_owner_id_crm_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity")),
    )
    with op.batch_alter_table("activity", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_activity_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_activity_opportunity_id"), ["opportunity_id"], unique=False)
        batch_op.create_index("ix_activity_owner_due", ["owner_id", "done_at", "due_at"], unique=False)

    op.create_table(
        "interaction",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=True),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("occurred_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=120), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("opportunity_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_interaction_contact_id_contact"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunity.id"],
            name=op.f("fk_interaction_opportunity_id_opportunity"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(["user_id"], ["crm_user.id"], name=op.f("fk_interaction_user_id_crm_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interaction")),
    )
    with op.batch_alter_table("interaction", schema=None) as batch_op:
        batch_op.create_index("ix_interaction_contact_time", ["contact_id", "occurred_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_interaction_opportunity_id"), ["opportunity_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_interaction_user_id"), ["user_id"], unique=False)

    op.create_table(
        "opportunity_stage_change",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("opportunity_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("from_stage_id", sa.Integer(), nullable=True),
        sa.Column("to_stage_id", sa.Integer(), nullable=False),
        sa.Column("changed_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["crm_user.id"], name=op.f("fk_opportunity_stage_change_actor_id_crm_user")
        ),
        sa.ForeignKeyConstraint(
            ["from_stage_id"],
            ["pipeline_stage.id"],
            name=op.f("fk_opportunity_stage_change_from_stage_id_pipeline_stage"),
        ),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunity.id"],
            name=op.f("fk_opportunity_stage_change_opportunity_id_opportunity"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_stage_id"], ["pipeline_stage.id"], name=op.f("fk_opportunity_stage_change_to_stage_id_pipeline_stage")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunity_stage_change")),
    )
    with op.batch_alter_table("opportunity_stage_change", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_opportunity_stage_change_opportunity_id"), ["opportunity_id"], unique=False
        )

    op.create_table(
        "purchase",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("purchased_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("rep_id", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("special_instructions", sa.Text(), nullable=True),
        sa.Column("opportunity_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("external_ref", sa.String(length=120), nullable=True),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_purchase_contact_id_contact"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunity.id"],
            name=op.f("fk_purchase_opportunity_id_opportunity"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(["rep_id"], ["crm_user.id"], name=op.f("fk_purchase_rep_id_crm_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_purchase_external_ref")),
    )
    with op.batch_alter_table("purchase", schema=None) as batch_op:
        batch_op.create_index("ix_purchase_contact_time", ["contact_id", "purchased_at"], unique=False)
        batch_op.create_index("ix_purchase_rep_time", ["rep_id", "purchased_at"], unique=False)
        batch_op.create_index("ix_purchase_time", ["purchased_at"], unique=False)

    op.create_table(
        "purchase_line",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("purchase_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("line_total", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["product.id"], name=op.f("fk_purchase_line_product_id_product")),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchase.id"], name=op.f("fk_purchase_line_purchase_id_purchase"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase_line")),
    )
    with op.batch_alter_table("purchase_line", schema=None) as batch_op:
        batch_op.create_index("ix_purchase_line_product", ["product_id", "purchase_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_purchase_line_purchase_id"), ["purchase_id"], unique=False)

    _seed_default_pipeline()


def _seed_default_pipeline() -> None:
    """A default sales pipeline, so opportunities work out of the box (bundles replace it)."""
    pipeline = sa.table("pipeline", sa.column("id", sa.Integer), sa.column("name", sa.String),
                        sa.column("is_default", sa.Boolean))  # fmt: skip
    stage = sa.table("pipeline_stage", sa.column("pipeline_id", sa.Integer), sa.column("key", sa.String),
                     sa.column("name", sa.String), sa.column("position", sa.Integer),
                     sa.column("probability", sa.Integer), sa.column("outcome", sa.String))  # fmt: skip
    bind = op.get_bind()
    bind.execute(pipeline.insert().values(name="sales", is_default=True))
    pipeline_id = bind.execute(sa.select(pipeline.c.id).where(pipeline.c.name == "sales")).scalar_one()
    stages = [("qualification", "Qualification", 10, "open"), ("needs_analysis", "Needs analysis", 30, "open"),
              ("proposal", "Proposal", 60, "open"), ("negotiation", "Negotiation", 80, "open"),
              ("won", "Won", 100, "won"), ("lost", "Lost", 0, "lost")]  # fmt: skip
    op.bulk_insert(stage, [
        {"pipeline_id": pipeline_id, "key": key, "name": name, "position": position, "probability": probability,
         "outcome": outcome}
        for position, (key, name, probability, outcome) in enumerate(stages)
    ])  # fmt: skip


def downgrade() -> None:
    op.drop_index(op.f("ix_mail_delivery_recipient"), table_name="mail_delivery")
    op.drop_table("mail_delivery")
    op.drop_index("ix_ad_spend_campaign_day", table_name="ad_spend")
    op.drop_table("ad_spend")
    with op.batch_alter_table("purchase_line", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_purchase_line_purchase_id"))
        batch_op.drop_index("ix_purchase_line_product")

    op.drop_table("purchase_line")
    with op.batch_alter_table("purchase", schema=None) as batch_op:
        batch_op.drop_index("ix_purchase_time")
        batch_op.drop_index("ix_purchase_rep_time")
        batch_op.drop_index("ix_purchase_contact_time")

    op.drop_table("purchase")
    with op.batch_alter_table("opportunity_stage_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_opportunity_stage_change_opportunity_id"))

    op.drop_table("opportunity_stage_change")
    with op.batch_alter_table("interaction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_interaction_user_id"))
        batch_op.drop_index(batch_op.f("ix_interaction_opportunity_id"))
        batch_op.drop_index("ix_interaction_contact_time")

    op.drop_table("interaction")
    with op.batch_alter_table("activity", schema=None) as batch_op:
        batch_op.drop_index("ix_activity_owner_due")
        batch_op.drop_index(batch_op.f("ix_activity_opportunity_id"))
        batch_op.drop_index(batch_op.f("ix_activity_contact_id"))

    op.drop_table("activity")
    with op.batch_alter_table("touchpoint", schema=None) as batch_op:
        batch_op.drop_index("ix_touchpoint_kind_time")
        batch_op.drop_index("ix_touchpoint_contact_time")
        batch_op.drop_index("ix_touchpoint_campaign_kind")
        batch_op.drop_index("ix_touchpoint_affiliate_kind")
        batch_op.drop_index("ix_touchpoint_ad_kind")

    op.drop_table("touchpoint")
    with op.batch_alter_table("opportunity", schema=None) as batch_op:
        batch_op.drop_index("ix_opportunity_status_stage")
        batch_op.drop_index("ix_opportunity_owner_status")
        batch_op.drop_index("ix_opportunity_contact")

    op.drop_table("opportunity")
    with op.batch_alter_table("lifecycle_change", schema=None) as batch_op:
        batch_op.drop_index("ix_lifecycle_change_to_stage")
        batch_op.drop_index("ix_lifecycle_change_contact")

    op.drop_table("lifecycle_change")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_contact_time")

    op.drop_table("feedback")
    op.drop_table("contact_tag")
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_stage_last_activity")
        batch_op.drop_index(batch_op.f("ix_contact_phone_normalized"))
        batch_op.drop_index("ix_contact_owner_stage")
        batch_op.drop_index(batch_op.f("ix_contact_organization_id"))
        batch_op.drop_index("ix_contact_created_at")

    op.drop_table("contact")
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entry_occurred_at"))
        batch_op.drop_index("ix_audit_entry_entity")

    op.drop_table("audit_entry")
    op.drop_table("pipeline_stage")
    with op.batch_alter_table("crm_user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crm_user_team_id"))

    op.drop_table("crm_user")
    op.drop_table("team")
    op.drop_table("tag")
    op.drop_table("product")
    op.drop_table("pipeline")
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organization_name"))
        batch_op.drop_index(batch_op.f("ix_organization_domain"))

    op.drop_table("organization")
    op.drop_table("job_worker")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_state_available")

    op.drop_table("job")
    op.drop_table("custom_field")

"""Lead capture on the web: tracked links, web forms, affiliates, attribution.

Revision ID: core_0004
Revises: core_0003
Create Date: 2026-11-29 03:00:00

- ``tracked_link``: short links ``/r/<code>``; ``touchpoint.link_id`` counts
  their clicks with one index seek.
- ``web_form``: forms defined by data.
- ``affiliate``: partners with a commission rule and a postback URL.
- ``contact_attribution`` / ``conversion_attribution``: first and last touch
  per contact and per conversion, with the affiliate's commission.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crmcore.db

revision = "core_0004"
down_revision = "core_0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tracked_link",
        sa.Column("id", _ID, nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=True),
        sa.Column("medium", sa.String(length=255), nullable=True),
        sa.Column("campaign", sa.String(length=255), nullable=True),
        sa.Column("ad", sa.String(length=255), nullable=True),
        sa.Column("affiliate", sa.String(length=255), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracked_link")),
        sa.UniqueConstraint("code", name=op.f("uq_tracked_link_code")),
    )
    op.create_table(
        "web_form",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=80), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("consent_text", sa.Text(), nullable=True),
        sa.Column("consent_purposes", sa.JSON(), nullable=False),
        sa.Column("consent_required", sa.Boolean(), nullable=False),
        sa.Column("thank_you_url", sa.Text(), nullable=True),
        sa.Column("thank_you_message", sa.Text(), nullable=True),
        sa.Column("allowed_origins", sa.JSON(), nullable=False),
        sa.Column("campaign", sa.String(length=255), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_form")),
        sa.UniqueConstraint("slug", name=op.f("uq_web_form_slug")),
    )
    op.create_table(
        "affiliate",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("commission_percent", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("commission_flat", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("postback_url", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate")),
        sa.UniqueConstraint("code", name=op.f("uq_affiliate_code")),
    )
    with op.batch_alter_table("touchpoint", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_id", _ID, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_touchpoint_link_id_tracked_link"), "tracked_link", ["link_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index(batch_op.f("ix_touchpoint_link_id"), ["link_id"], unique=False)
    op.create_table(
        "contact_attribution",
        sa.Column("contact_id", _ID, nullable=False),
        sa.Column("first_touch_id", _ID, nullable=True),
        sa.Column("first_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("last_touch_id", _ID, nullable=True),
        sa.Column("last_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_contact_attribution_contact_id_contact"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["first_touch_id"],
            ["touchpoint.id"],
            name=op.f("fk_contact_attribution_first_touch_id_touchpoint"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["last_touch_id"],
            ["touchpoint.id"],
            name=op.f("fk_contact_attribution_last_touch_id_touchpoint"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_contact_attribution")),
    )
    op.create_table(
        "conversion_attribution",
        sa.Column("touchpoint_id", _ID, nullable=False),
        sa.Column("contact_id", _ID, nullable=True),
        sa.Column("occurred_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("value", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("first_touch_id", _ID, nullable=True),
        sa.Column("last_touch_id", _ID, nullable=True),
        sa.Column("affiliate_id", sa.Integer(), nullable=True),
        sa.Column("commission", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["affiliate_id"], ["affiliate.id"], name=op.f("fk_conversion_attribution_affiliate_id_affiliate")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_conversion_attribution_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["first_touch_id"],
            ["touchpoint.id"],
            name=op.f("fk_conversion_attribution_first_touch_id_touchpoint"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["last_touch_id"],
            ["touchpoint.id"],
            name=op.f("fk_conversion_attribution_last_touch_id_touchpoint"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["touchpoint_id"],
            ["touchpoint.id"],
            name=op.f("fk_conversion_attribution_touchpoint_id_touchpoint"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("touchpoint_id", name=op.f("pk_conversion_attribution")),
    )
    op.create_index(
        "ix_conversion_attribution_affiliate_time", "conversion_attribution", ["affiliate_id", "occurred_at"]
    )
    op.create_index("ix_conversion_attribution_contact", "conversion_attribution", ["contact_id"])


def downgrade() -> None:
    op.drop_index("ix_conversion_attribution_contact", table_name="conversion_attribution")
    op.drop_index("ix_conversion_attribution_affiliate_time", table_name="conversion_attribution")
    op.drop_table("conversion_attribution")
    op.drop_table("contact_attribution")
    with op.batch_alter_table("touchpoint", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_touchpoint_link_id"))
        batch_op.drop_constraint(batch_op.f("fk_touchpoint_link_id_tracked_link"), type_="foreignkey")
        batch_op.drop_column("link_id")
    op.drop_table("affiliate")
    op.drop_table("web_form")
    op.drop_table("tracked_link")

"""Consent ledger, double opt-in requests and saved segments.

Revision ID: core_0005
Revises: core_0004
Create Date: 2026-11-29 03:00:00

- ``consent``: where each contact stands per purpose and channel (granted,
  withdrawn, pending), with the proof of the latest change.
- ``consent_event``: the ledger itself; every request, grant, confirmation and
  withdrawal with its time, source, IP, form version and wording.
- ``consent_request``: double opt-in links waiting for their click.
- ``segment``: saved segment definitions (compiled to SQL when used).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crmcore.db

revision = "core_0005"
down_revision = "core_0004"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "consent",
        sa.Column("id", ID, nullable=False),
        sa.Column("contact_id", ID, nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("changed_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("form_version", sa.String(length=80), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_consent_contact_id_contact"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
        sa.UniqueConstraint("contact_id", "purpose", "channel", name=op.f("uq_consent_contact_id_purpose_channel")),
    )
    op.create_index(
        "ix_consent_purpose_channel_status", "consent", ["purpose", "channel", "status", "contact_id"], unique=False
    )
    op.create_table(
        "consent_event",
        sa.Column("id", ID, nullable=False),
        sa.Column("contact_id", ID, nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=12), nullable=False),
        sa.Column("occurred_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("form_version", sa.String(length=80), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_consent_event_contact_id_contact"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_event")),
    )
    op.create_index("ix_consent_event_contact_time", "consent_event", ["contact_id", "occurred_at"], unique=False)
    op.create_table(
        "consent_request",
        sa.Column("id", ID, nullable=False),
        sa.Column("contact_id", ID, nullable=False),
        sa.Column("email_normalized", sa.String(length=320), nullable=True),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("form_slug", sa.String(length=120), nullable=True),
        sa.Column("proof", sa.JSON(), nullable=False),
        sa.Column("requested_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("confirmed_ip", sa.String(length=45), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_consent_request_contact_id_contact"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_request")),
        sa.UniqueConstraint("nonce", name=op.f("uq_consent_request_nonce")),
    )
    op.create_index("ix_consent_request_contact", "consent_request", ["contact_id", "requested_at"], unique=False)
    op.create_table(
        "segment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment")),
        sa.UniqueConstraint("name", name=op.f("uq_segment_name")),
    )


def downgrade() -> None:
    op.drop_table("segment")
    op.drop_index("ix_consent_request_contact", table_name="consent_request")
    op.drop_table("consent_request")
    op.drop_index("ix_consent_event_contact_time", table_name="consent_event")
    op.drop_table("consent_event")
    op.drop_index("ix_consent_purpose_channel_status", table_name="consent")
    op.drop_table("consent")

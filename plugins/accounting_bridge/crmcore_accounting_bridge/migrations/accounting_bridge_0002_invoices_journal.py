"""Invoice series, invoices and lines, the journal (entries, postings), payments, export state, external ids.

Revision ID: accounting_bridge_0002
Revises: accounting_bridge_0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crmcore.db

revision = "accounting_bridge_0002"
down_revision = "accounting_bridge_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounting_bridge_export_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=12), nullable=False),
        sa.Column("target", sa.String(length=500), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("last_entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("exported_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounting_bridge_export_state")),
        sa.UniqueConstraint("format", "target", name=op.f("uq_accounting_bridge_export_state_format_target")),
    )
    op.create_table(
        "accounting_bridge_external_ref",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("connector", sa.String(length=60), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("local_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("pushed_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounting_bridge_external_ref")),
        sa.UniqueConstraint(
            "connector", "kind", "local_id", name=op.f("uq_accounting_bridge_external_ref_connector_kind_local_id")
        ),
    )
    op.create_table(
        "accounting_bridge_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounting_bridge_series")),
        sa.UniqueConstraint("code", "year", name=op.f("uq_accounting_bridge_series_code_year")),
    )
    op.create_table(
        "accounting_bridge_invoice",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rep_id", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("rounding", sa.String(length=8), nullable=False),
        sa.Column("net_total", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("tax_total", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("total", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("taxes", sa.JSON(), nullable=False),
        sa.Column("paid_amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("credited_amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=True),
        sa.Column("source", sa.String(length=60), nullable=True),
        sa.Column("credits_invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("overdue_notified_on", sa.Date(), nullable=True),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_accounting_bridge_invoice_contact_id_contact")
        ),
        sa.ForeignKeyConstraint(
            ["credits_invoice_id"],
            ["accounting_bridge_invoice.id"],
            name=op.f("fk_accounting_bridge_invoice_credits_invoice_id_accounting_bridge_invoice"),
        ),
        sa.ForeignKeyConstraint(["rep_id"], ["crm_user.id"], name=op.f("fk_accounting_bridge_invoice_rep_id_crm_user")),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["accounting_bridge_series.id"],
            name=op.f("fk_accounting_bridge_invoice_series_id_accounting_bridge_series"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounting_bridge_invoice")),
        sa.UniqueConstraint("number", name=op.f("uq_accounting_bridge_invoice_number")),
        sa.UniqueConstraint("source", name=op.f("uq_accounting_bridge_invoice_source")),
    )
    with op.batch_alter_table("accounting_bridge_invoice", schema=None) as batch_op:
        batch_op.create_index(
            "ix_accounting_bridge_invoice_contact_status", ["contact_id", "status", "due_on"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_accounting_bridge_invoice_credits_invoice_id"), ["credits_invoice_id"], unique=False
        )
        batch_op.create_index("ix_accounting_bridge_invoice_issued", ["issued_on", "kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_accounting_bridge_invoice_rep_id"), ["rep_id"], unique=False)
        batch_op.create_index("ix_accounting_bridge_invoice_status_due", ["status", "due_on"], unique=False)

    op.create_table(
        "accounting_bridge_invoice_line",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("product_group", sa.String(length=120), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("discount", sa.Numeric(precision=9, scale=6), nullable=False),
        sa.Column("tax_inclusive", sa.Boolean(), nullable=False),
        sa.Column("taxes", sa.JSON(), nullable=False),
        sa.Column("net", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("tax", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("gross", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["accounting_bridge_invoice.id"],
            name=op.f("fk_accounting_bridge_invoice_line_invoice_id_accounting_bridge_invoice"),
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["product.id"], name=op.f("fk_accounting_bridge_invoice_line_product_id_product")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounting_bridge_invoice_line")),
    )
    with op.batch_alter_table("accounting_bridge_invoice_line", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_accounting_bridge_invoice_line_invoice_id"), ["invoice_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_accounting_bridge_invoice_line_product_id"), ["product_id"], unique=False)

    op.create_table(
        "accounting_bridge_payment",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("applied", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("credit", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("reference", sa.String(length=120), nullable=False),
        sa.Column("source", sa.String(length=60), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_accounting_bridge_payment_contact_id_contact")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["accounting_bridge_invoice.id"],
            name=op.f("fk_accounting_bridge_payment_invoice_id_accounting_bridge_invoice"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounting_bridge_payment")),
        sa.UniqueConstraint("reference", name=op.f("uq_accounting_bridge_payment_reference")),
    )
    with op.batch_alter_table("accounting_bridge_payment", schema=None) as batch_op:
        batch_op.create_index("ix_accounting_bridge_payment_contact", ["contact_id", "received_on"], unique=False)
        batch_op.create_index(batch_op.f("ix_accounting_bridge_payment_invoice_id"), ["invoice_id"], unique=False)

    op.create_table(
        "accounting_bridge_entry",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("posted_on", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("payee", sa.String(length=255), nullable=False),
        sa.Column("narration", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("payment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("reverses_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["accounting_bridge_invoice.id"],
            name=op.f("fk_accounting_bridge_entry_invoice_id_accounting_bridge_invoice"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["accounting_bridge_payment.id"],
            name=op.f("fk_accounting_bridge_entry_payment_id_accounting_bridge_payment"),
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"],
            ["accounting_bridge_entry.id"],
            name=op.f("fk_accounting_bridge_entry_reverses_id_accounting_bridge_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounting_bridge_entry")),
        sa.UniqueConstraint("reverses_id", name=op.f("uq_accounting_bridge_entry_reverses_id")),
    )
    with op.batch_alter_table("accounting_bridge_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_accounting_bridge_entry_invoice_id"), ["invoice_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_accounting_bridge_entry_payment_id"), ["payment_id"], unique=False)
        batch_op.create_index("ix_accounting_bridge_entry_posted", ["posted_on", "id"], unique=False)

    op.create_table(
        "accounting_bridge_posting",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_accounting_bridge_posting_contact_id_contact")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["accounting_bridge_entry.id"],
            name=op.f("fk_accounting_bridge_posting_entry_id_accounting_bridge_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounting_bridge_posting")),
    )
    with op.batch_alter_table("accounting_bridge_posting", schema=None) as batch_op:
        batch_op.create_index("ix_accounting_bridge_posting_account", ["account", "entry_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_accounting_bridge_posting_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_accounting_bridge_posting_entry_id"), ["entry_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("accounting_bridge_posting", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounting_bridge_posting_entry_id"))
        batch_op.drop_index(batch_op.f("ix_accounting_bridge_posting_contact_id"))
        batch_op.drop_index("ix_accounting_bridge_posting_account")

    op.drop_table("accounting_bridge_posting")
    with op.batch_alter_table("accounting_bridge_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_accounting_bridge_entry_posted")
        batch_op.drop_index(batch_op.f("ix_accounting_bridge_entry_payment_id"))
        batch_op.drop_index(batch_op.f("ix_accounting_bridge_entry_invoice_id"))

    op.drop_table("accounting_bridge_entry")
    with op.batch_alter_table("accounting_bridge_payment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounting_bridge_payment_invoice_id"))
        batch_op.drop_index("ix_accounting_bridge_payment_contact")

    op.drop_table("accounting_bridge_payment")
    with op.batch_alter_table("accounting_bridge_invoice_line", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounting_bridge_invoice_line_product_id"))
        batch_op.drop_index(batch_op.f("ix_accounting_bridge_invoice_line_invoice_id"))

    op.drop_table("accounting_bridge_invoice_line")
    with op.batch_alter_table("accounting_bridge_invoice", schema=None) as batch_op:
        batch_op.drop_index("ix_accounting_bridge_invoice_status_due")
        batch_op.drop_index(batch_op.f("ix_accounting_bridge_invoice_rep_id"))
        batch_op.drop_index("ix_accounting_bridge_invoice_issued")
        batch_op.drop_index(batch_op.f("ix_accounting_bridge_invoice_credits_invoice_id"))
        batch_op.drop_index("ix_accounting_bridge_invoice_contact_status")

    op.drop_table("accounting_bridge_invoice")
    op.drop_table("accounting_bridge_series")
    op.drop_table("accounting_bridge_external_ref")
    op.drop_table("accounting_bridge_export_state")

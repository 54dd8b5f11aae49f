"""Tickets, SLA calendars, policies and metrics, contracts, knowledge base (with full-text search).

The knowledge base's full-text index is made with each database's own engine
(dialect-specific DDL, kept out of schema comparisons by ``crmcore.db.unmanaged``):
an FTS5 virtual table on SQLite, a ``tsvector`` table with a GIN index on
PostgreSQL, a FULLTEXT-indexed table on MariaDB.

Revision ID: ticketing_0002
Revises: ticketing_0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crmcore.db

revision = "ticketing_0002"
down_revision = "ticketing_0001"
branch_labels = None
depends_on = None

FTS_DDL = {
    "sqlite": ["CREATE VIRTUAL TABLE ticketing_kb_fts USING fts5(title, body, tokenize='porter unicode61')"],
    "postgresql": [
        "CREATE TABLE ticketing_kb_fts (article_id INTEGER PRIMARY KEY REFERENCES ticketing_kb_article (id)"
        " ON DELETE CASCADE, document TSVECTOR NOT NULL)",
        "CREATE INDEX ticketing_kb_fts_document ON ticketing_kb_fts USING GIN (document)",
    ],
    "mysql": [
        "CREATE TABLE ticketing_kb_fts (article_id INTEGER NOT NULL PRIMARY KEY, title VARCHAR(255) NOT NULL,"
        " body MEDIUMTEXT NOT NULL, FULLTEXT KEY ticketing_kb_fts_text (title, body),"
        " CONSTRAINT ticketing_kb_fts_article FOREIGN KEY (article_id) REFERENCES ticketing_kb_article (id)"
        " ON DELETE CASCADE) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    ],
}


def _dialect() -> str:
    name = op.get_bind().dialect.name
    return "mysql" if name in ("mysql", "mariadb") else name


def upgrade() -> None:
    op.create_table(
        "ticketing_kb_category",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticketing_kb_category")),
        sa.UniqueConstraint("name", name=op.f("uq_ticketing_kb_category_name")),
    )
    op.create_table(
        "ticketing_sla_calendar",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("hours", sa.JSON(), nullable=False),
        sa.Column("holiday_country", sa.String(length=2), nullable=True),
        sa.Column("holiday_region", sa.String(length=10), nullable=True),
        sa.Column("closed_days", sa.JSON(), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticketing_sla_calendar")),
        sa.UniqueConstraint("name", name=op.f("uq_ticketing_sla_calendar_name")),
    )
    op.create_table(
        "ticketing_kb_article",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=160), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("helpful_yes", sa.Integer(), nullable=False),
        sa.Column("helpful_no", sa.Integer(), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("published_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["ticketing_kb_category.id"],
            name=op.f("fk_ticketing_kb_article_category_id_ticketing_kb_category"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticketing_kb_article")),
        sa.UniqueConstraint("slug", name=op.f("uq_ticketing_kb_article_slug")),
    )
    with op.batch_alter_table("ticketing_kb_article", schema=None) as batch_op:
        batch_op.create_index("ix_ticketing_kb_article_status", ["status", "kind"], unique=False)

    op.create_table(
        "ticketing_sla_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("calendar_id", sa.Integer(), nullable=True),
        sa.Column("pause_statuses", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("escalations", sa.JSON(), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["ticketing_sla_calendar.id"],
            name=op.f("fk_ticketing_sla_policy_calendar_id_ticketing_sla_calendar"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticketing_sla_policy")),
        sa.UniqueConstraint("name", name=op.f("uq_ticketing_sla_policy_name")),
    )
    op.create_table(
        "ticketing_kb_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["ticketing_kb_article.id"],
            name=op.f("fk_ticketing_kb_version_article_id_ticketing_kb_article"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticketing_kb_version")),
        sa.UniqueConstraint("article_id", "version", name=op.f("uq_ticketing_kb_version_article_id_version")),
    )
    op.create_table(
        "ticketing_kb_vote",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("helpful", sa.Boolean(), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["ticketing_kb_article.id"],
            name=op.f("fk_ticketing_kb_vote_article_id_ticketing_kb_article"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticketing_kb_vote")),
    )
    with op.batch_alter_table("ticketing_kb_vote", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticketing_kb_vote_article_id"), ["article_id"], unique=False)

    op.create_table(
        "ticketing_contract",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("product", sa.String(length=120), nullable=True),
        sa.Column("tier", sa.String(length=40), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("calendar_id", sa.Integer(), nullable=True),
        sa.Column("reference", sa.String(length=60), nullable=True),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["ticketing_sla_calendar.id"],
            name=op.f("fk_ticketing_contract_calendar_id_ticketing_sla_calendar"),
        ),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"], name=op.f("fk_ticketing_contract_contact_id_contact")),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organization.id"], name=op.f("fk_ticketing_contract_organization_id_organization")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticketing_contract")),
    )
    with op.batch_alter_table("ticketing_contract", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticketing_contract_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticketing_contract_organization_id"), ["organization_id"], unique=False)

    op.create_table(
        "ticketing_ticket",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.String(length=24), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("requester_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("product", sa.String(length=120), nullable=True),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=True),
        sa.Column("contract_id", sa.Integer(), nullable=True),
        sa.Column("sla_note", sa.String(length=255), nullable=True),
        sa.Column("status_log", sa.JSON(), nullable=False),
        sa.Column("follow_up_of_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("opened_by_agent", sa.Boolean(), nullable=False),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("first_reply_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("solved_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("closed_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("next_due_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["crm_user.id"], name=op.f("fk_ticketing_ticket_assignee_id_crm_user")
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["ticketing_contract.id"], name=op.f("fk_ticketing_ticket_contract_id_ticketing_contract")
        ),
        sa.ForeignKeyConstraint(
            ["follow_up_of_id"],
            ["ticketing_ticket.id"],
            name=op.f("fk_ticketing_ticket_follow_up_of_id_ticketing_ticket"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organization.id"], name=op.f("fk_ticketing_ticket_organization_id_organization")
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"], ["ticketing_sla_policy.id"], name=op.f("fk_ticketing_ticket_policy_id_ticketing_sla_policy")
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["contact.id"], name=op.f("fk_ticketing_ticket_requester_id_contact")
        ),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"], name=op.f("fk_ticketing_ticket_team_id_team")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticketing_ticket")),
        sa.UniqueConstraint("number", name=op.f("uq_ticketing_ticket_number")),
    )
    with op.batch_alter_table("ticketing_ticket", schema=None) as batch_op:
        batch_op.create_index("ix_ticketing_ticket_assignee_status", ["assignee_id", "status"], unique=False)
        batch_op.create_index("ix_ticketing_ticket_category_created", ["category", "created_at"], unique=False)
        batch_op.create_index("ix_ticketing_ticket_channel_created", ["channel", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticketing_ticket_next_due_at"), ["next_due_at"], unique=False)
        batch_op.create_index("ix_ticketing_ticket_requester", ["requester_id", "created_at"], unique=False)
        batch_op.create_index("ix_ticketing_ticket_status_created", ["status", "created_at"], unique=False)

    op.create_table(
        "ticketing_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("occurred_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("field", sa.String(length=40), nullable=False),
        sa.Column("old_value", sa.String(length=500), nullable=True),
        sa.Column("new_value", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["actor_id"], ["crm_user.id"], name=op.f("fk_ticketing_history_actor_id_crm_user")),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticketing_ticket.id"],
            name=op.f("fk_ticketing_history_ticket_id_ticketing_ticket"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticketing_history")),
    )
    with op.batch_alter_table("ticketing_history", schema=None) as batch_op:
        batch_op.create_index("ix_ticketing_history_ticket", ["ticket_id", "occurred_at"], unique=False)

    op.create_table(
        "ticketing_message",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("author_type", sa.String(length=10), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"], name=op.f("fk_ticketing_message_contact_id_contact")),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticketing_ticket.id"],
            name=op.f("fk_ticketing_message_ticket_id_ticketing_ticket"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["user_id"], ["crm_user.id"], name=op.f("fk_ticketing_message_user_id_crm_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticketing_message")),
        sa.UniqueConstraint("message_id", name=op.f("uq_ticketing_message_message_id")),
    )
    with op.batch_alter_table("ticketing_message", schema=None) as batch_op:
        batch_op.create_index("ix_ticketing_message_ticket", ["ticket_id", "created_at"], unique=False)

    op.create_table(
        "ticketing_sla_metric",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("metric", sa.String(length=20), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=True),
        sa.Column("priority", sa.String(length=10), nullable=False),
        sa.Column("target_seconds", sa.Integer(), nullable=False),
        sa.Column("business", sa.Boolean(), nullable=False),
        sa.Column("calendar_id", sa.Integer(), nullable=True),
        sa.Column("target_source", sa.String(length=60), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("started_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.Column("due_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("manual_due", sa.Boolean(), nullable=False),
        sa.Column("fulfilled_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("breached_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.Column("elapsed_seconds", sa.Integer(), nullable=False),
        sa.Column("paused_seconds", sa.Integer(), nullable=False),
        sa.Column("warned", sa.JSON(), nullable=False),
        sa.Column("escalated", sa.Integer(), nullable=False),
        sa.Column("timer_seq", sa.Integer(), nullable=False),
        sa.Column("timer_at", crmcore.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["ticketing_sla_calendar.id"],
            name=op.f("fk_ticketing_sla_metric_calendar_id_ticketing_sla_calendar"),
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["ticketing_sla_policy.id"],
            name=op.f("fk_ticketing_sla_metric_policy_id_ticketing_sla_policy"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticketing_ticket.id"],
            name=op.f("fk_ticketing_sla_metric_ticket_id_ticketing_ticket"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticketing_sla_metric")),
    )
    with op.batch_alter_table("ticketing_sla_metric", schema=None) as batch_op:
        batch_op.create_index("ix_ticketing_sla_metric_policy", ["policy_id", "metric"], unique=False)
        batch_op.create_index("ix_ticketing_sla_metric_fulfilled", ["metric", "fulfilled_at"], unique=False)
        batch_op.create_index("ix_ticketing_sla_metric_state_due", ["state", "due_at"], unique=False)
        batch_op.create_index("ix_ticketing_sla_metric_ticket", ["ticket_id", "metric"], unique=False)

    op.create_table(
        "ticketing_ticket_article",
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("linked_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["ticketing_kb_article.id"],
            name=op.f("fk_ticketing_ticket_article_article_id_ticketing_kb_article"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticketing_ticket.id"],
            name=op.f("fk_ticketing_ticket_article_ticket_id_ticketing_ticket"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", "article_id", name=op.f("pk_ticketing_ticket_article")),
    )
    with op.batch_alter_table("ticketing_ticket_article", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticketing_ticket_article_article_id"), ["article_id"], unique=False)

    op.create_table(
        "ticketing_attachment",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=120), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["ticketing_message.id"],
            name=op.f("fk_ticketing_attachment_message_id_ticketing_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticketing_attachment")),
    )
    with op.batch_alter_table("ticketing_attachment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticketing_attachment_message_id"), ["message_id"], unique=False)

    for statement in FTS_DDL[_dialect()]:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS ticketing_kb_fts")
    with op.batch_alter_table("ticketing_attachment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticketing_attachment_message_id"))

    op.drop_table("ticketing_attachment")
    with op.batch_alter_table("ticketing_ticket_article", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticketing_ticket_article_article_id"))

    op.drop_table("ticketing_ticket_article")
    with op.batch_alter_table("ticketing_sla_metric", schema=None) as batch_op:
        batch_op.drop_index("ix_ticketing_sla_metric_ticket")
        batch_op.drop_index("ix_ticketing_sla_metric_state_due")
        batch_op.drop_index("ix_ticketing_sla_metric_policy")
        batch_op.drop_index("ix_ticketing_sla_metric_fulfilled")

    op.drop_table("ticketing_sla_metric")
    with op.batch_alter_table("ticketing_message", schema=None) as batch_op:
        batch_op.drop_index("ix_ticketing_message_ticket")

    op.drop_table("ticketing_message")
    with op.batch_alter_table("ticketing_history", schema=None) as batch_op:
        batch_op.drop_index("ix_ticketing_history_ticket")

    op.drop_table("ticketing_history")
    with op.batch_alter_table("ticketing_ticket", schema=None) as batch_op:
        batch_op.drop_index("ix_ticketing_ticket_status_created")
        batch_op.drop_index("ix_ticketing_ticket_requester")
        batch_op.drop_index(batch_op.f("ix_ticketing_ticket_next_due_at"))
        batch_op.drop_index("ix_ticketing_ticket_channel_created")
        batch_op.drop_index("ix_ticketing_ticket_category_created")
        batch_op.drop_index("ix_ticketing_ticket_assignee_status")

    op.drop_table("ticketing_ticket")
    with op.batch_alter_table("ticketing_contract", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticketing_contract_organization_id"))
        batch_op.drop_index(batch_op.f("ix_ticketing_contract_contact_id"))

    op.drop_table("ticketing_contract")
    with op.batch_alter_table("ticketing_kb_vote", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticketing_kb_vote_article_id"))

    op.drop_table("ticketing_kb_vote")
    op.drop_table("ticketing_kb_version")
    op.drop_table("ticketing_sla_policy")
    with op.batch_alter_table("ticketing_kb_article", schema=None) as batch_op:
        batch_op.drop_index("ix_ticketing_kb_article_status")

    op.drop_table("ticketing_kb_article")
    op.drop_table("ticketing_sla_calendar")
    op.drop_table("ticketing_kb_category")

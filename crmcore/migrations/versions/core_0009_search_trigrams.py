"""Trigram indexes for the console's search on PostgreSQL (pg_trgm), when the extension can be had.

The search matches ``%text%`` in contacts' email and names (and phone numbers by their end), organizations'
names and domains, and opportunities' names: no B-tree helps, so a large CRM
scans the tables. On PostgreSQL, GIN trigram indexes make those ``LIKE`` and
``ILIKE`` matches index lookups. ``CREATE EXTENSION pg_trgm`` needs the
extension installed (postgresql-contrib) and, before PostgreSQL 13, a
superuser; where it cannot be created the migration logs why and leaves the
search as it was (correct, only slower). Other databases are left alone.

Revision ID: core_0009
Revises: core_0008
Create Date: 2026-11-29 06:20:00
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "core_0009"
down_revision = "core_0008"
branch_labels = None
depends_on = None

log = logging.getLogger("crmcore.migrations")

#: ``(index name, table, column)``; the names start with ``trgm_`` (``crmcore.models.TRIGRAM_PREFIX``).
TRIGRAM_INDEXES = (
    ("trgm_contact_email", "contact", "email_normalized"),
    ("trgm_contact_first_name", "contact", "first_name"),
    ("trgm_contact_last_name", "contact", "last_name"),
    ("trgm_contact_phone", "contact", "phone_normalized"),
    ("trgm_organization_name", "organization", "name"),
    ("trgm_organization_domain", "organization", "domain"),
    ("trgm_opportunity_name", "opportunity", "name"),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar()
    if not available:
        log.warning("pg_trgm is not installed on this server: the console's search works without trigram "
                    "indexes (slower on large CRMs); install postgresql-contrib and run `crm db upgrade` again "
                    "after `CREATE EXTENSION pg_trgm`")  # fmt: skip
        return
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        log.warning("cannot create the pg_trgm extension (%s): the console's search works without trigram "
                    "indexes; a superuser may run CREATE EXTENSION pg_trgm, then run `crm db upgrade`",
                    str(exc.orig).strip())  # fmt: skip
        return
    for name, table, column in TRIGRAM_INDEXES:
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ({column} gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _table, _column in TRIGRAM_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")

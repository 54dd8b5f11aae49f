"""An index in source order for marketing.channels' distinct contacts (SQLite and PostgreSQL).

Distinct contacts do not add up across days, so ``marketing.channels`` counts
them from the touchpoints of the range. Grouped by source (its default), the
index on ``(COALESCE(source, utm_source), contact_id, occurred_at)`` hands the
rows over grouped and in contact order: the distinct count streams, with no
sort and no temporary table. MariaDB has no expression indexes: it is left as
it was. The name starts with ``expr_`` (``crmcore.models.EXPRESSION_PREFIX``),
which keeps it out of the comparison with the models.

Revision ID: core_0011
Revises: core_0010
Create Date: 2026-11-29 12:10:00
"""

from __future__ import annotations

from alembic import op

revision = "core_0011"
down_revision = "core_0010"
branch_labels = None
depends_on = None

NAME = "expr_touchpoint_source_contact"


def upgrade() -> None:
    if op.get_bind().dialect.name in ("sqlite", "postgresql"):
        op.execute(f"CREATE INDEX {NAME} ON touchpoint ((COALESCE(source, utm_source)), contact_id, occurred_at)")


def downgrade() -> None:
    if op.get_bind().dialect.name in ("sqlite", "postgresql"):
        op.execute(f"DROP INDEX {NAME}")

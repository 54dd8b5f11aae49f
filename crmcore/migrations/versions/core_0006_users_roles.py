"""Console users: passwords, sessions, roles, permissions, team managers.

Revision ID: core_0006
Revises: core_0005
Create Date: 2026-11-29 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crmcore.db import UTCDateTime

revision = "core_0006"
down_revision = "core_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crm_user") as batch:
        batch.add_column(sa.Column("password_hash", sa.String(255), nullable=True))
        batch.add_column(sa.Column("password_changed_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("last_login_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("locale", sa.String(16), nullable=True))
    op.create_table(
        "crm_role",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("customized", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_role")),
        sa.UniqueConstraint("name", name=op.f("uq_crm_role_name")),
    )
    op.create_table(
        "crm_role_permission",
        sa.Column("role_id", sa.Integer(), nullable=False),
        sa.Column("permission", sa.String(80), nullable=False),
        sa.ForeignKeyConstraint(["role_id"], ["crm_role.id"], name=op.f("fk_crm_role_permission_role_id_crm_role"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("role_id", "permission", name=op.f("pk_crm_role_permission")),
    )
    op.create_table(
        "crm_user_permission",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("permission", sa.String(80), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["crm_user.id"], name=op.f("fk_crm_user_permission_user_id_crm_user"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "permission", name=op.f("pk_crm_user_permission")),
    )
    op.create_table(
        "crm_team_manager",
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"], name=op.f("fk_crm_team_manager_team_id_team"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["crm_user.id"], name=op.f("fk_crm_team_manager_user_id_crm_user"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("team_id", "user_id", name=op.f("pk_crm_team_manager")),
    )
    op.create_index(op.f("ix_crm_team_manager_user_id"), "crm_team_manager", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_crm_team_manager_user_id"), table_name="crm_team_manager")
    op.drop_table("crm_team_manager")
    op.drop_table("crm_user_permission")
    op.drop_table("crm_role_permission")
    op.drop_table("crm_role")
    with op.batch_alter_table("crm_user") as batch:
        for column in ("locale", "session_epoch", "last_login_at", "password_changed_at", "password_hash"):
            batch.drop_column(column)

"""People: users (reps, agents) and teams, organizations, contacts, tags, custom fields."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigID, JSONData, UTCDateTime, unmanaged

#: Trigram indexes of the console's search, made by migration core_0009 on PostgreSQL when pg_trgm can be
#: created (the models cannot say "only if the extension exists"), so schema comparisons leave them out.
TRIGRAM_PREFIX = "trgm_"
unmanaged(TRIGRAM_PREFIX)


class Stage(StrEnum):
    """Lifecycle stages of a contact. Stages may move back (customer → dormant → former)."""

    LEAD = "lead"
    PROSPECT = "prospect"
    CUSTOMER = "customer"
    DORMANT = "dormant"
    FORMER = "former"


class Team(Base):
    """A team of users; managers see their teams' records."""

    __tablename__ = "team"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)


class User(Base):
    """Someone who works in the CRM: a sales rep, agent, marketer, manager or admin."""

    __tablename__ = "crm_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(40), default="rep")
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Argon2 hash of the console password; ``None`` means no console sign-in.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Bumped when the password changes or the user is disabled: older sessions end.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The console's language for this user (``en``, ``fa``); ``None`` follows the browser.
    locale: Mapped[str | None] = mapped_column(String(16))


class Role(Base):
    """A role that is not built in, or a built-in role whose grants were changed.

    Built-in roles (rep, agent, marketer, manager, admin) need no row: their
    grants come from the permissions' declared defaults until someone grants
    or revokes on them, which stores the role here with ``customized`` set.
    """

    __tablename__ = "crm_role"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    #: Which records its users reach: ``own`` (theirs), ``team``, ``managed`` (teams they manage) or ``all``.
    scope: Mapped[str] = mapped_column(String(10), default="team")
    #: True when the stored grants replace the declared defaults.
    customized: Mapped[bool] = mapped_column(Boolean, default=True)


class RolePermission(Base):
    """A permission a stored role grants."""

    __tablename__ = "crm_role_permission"

    role_id: Mapped[int] = mapped_column(ForeignKey("crm_role.id", ondelete="CASCADE"), primary_key=True)
    permission: Mapped[str] = mapped_column(String(80), primary_key=True)


class UserPermission(Base):
    """A permission granted to one user on top of their role's."""

    __tablename__ = "crm_user_permission"

    user_id: Mapped[int] = mapped_column(ForeignKey("crm_user.id", ondelete="CASCADE"), primary_key=True)
    permission: Mapped[str] = mapped_column(String(80), primary_key=True)


class TeamManager(Base):
    """A manager of a team: with the ``managed`` scope they reach its members' records."""

    __tablename__ = "crm_team_manager"

    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("crm_user.id", ondelete="CASCADE"), primary_key=True, index=True)


class Organization(Base):
    """A company or institution that contacts belong to."""

    __tablename__ = "organization"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    domain: Mapped[str | None] = mapped_column(String(255), index=True)
    industry: Mapped[str | None] = mapped_column(String(120))
    size_band: Mapped[str | None] = mapped_column(String(40))
    country: Mapped[str | None] = mapped_column(String(2))
    custom: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Contact(Base):
    """A person the company deals with, at some lifecycle stage."""

    __tablename__ = "contact"
    __table_args__ = (
        Index("ix_contact_stage_last_activity", "stage", "last_activity_at"),
        Index("ix_contact_owner_stage", "owner_id", "stage"),
        # contacts captured in a range, and their owner (sales.reps)
        Index("ix_contact_created_at", "created_at", "owner_id", "merged_into_id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    #: Lower-cased, validated email; unique, the first key for duplicates.
    email_normalized: Mapped[str | None] = mapped_column(String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(String(64))
    #: E.164 form of :attr:`phone`.
    phone_normalized: Mapped[str | None] = mapped_column(String(32), index=True)
    first_name: Mapped[str | None] = mapped_column(String(120))
    last_name: Mapped[str | None] = mapped_column(String(120))
    title: Mapped[str | None] = mapped_column(String(120))
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id"))
    stage: Mapped[str] = mapped_column(String(20), default=Stage.LEAD)
    stage_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str | None] = mapped_column(String(120))
    country: Mapped[str | None] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(120))
    city: Mapped[str | None] = mapped_column(String(120))
    language: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    birth_date: Mapped[date | None] = mapped_column(Date)
    #: Values of declared custom fields, validated on write.
    custom: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)
    #: The last computed lead score (sum of contributions).
    score: Mapped[int] = mapped_column(Integer, default=0)
    do_not_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    do_not_track: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Latest touchpoint, purchase or interaction; dormancy is measured from it.
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Set when the contact was merged into another (the survivor).
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id"))
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    #: Set by ``crm.leads.capture``: False when an existing contact was matched.
    created = True

    @property
    def name(self) -> str:
        """The display name: first and last name, else the email, else ``#id``."""
        full = " ".join(p for p in (self.first_name, self.last_name) if p)
        return full or self.email or f"#{self.id}"


class Tag(Base):
    """A label that can be put on contacts."""

    __tablename__ = "tag"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)


class ContactTag(Base):
    """A tag on a contact."""

    __tablename__ = "contact_tag"

    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True)


class CustomField(Base):
    """A custom field declared by a plugin, a bundle or an admin."""

    __tablename__ = "custom_field"
    __table_args__ = (UniqueConstraint("entity", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ``contact`` or ``organization``.
    entity: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(80))
    label: Mapped[str] = mapped_column(String(200))
    #: ``text``, ``number``, ``integer``, ``date``, ``bool`` or ``choice``.
    type: Mapped[str] = mapped_column(String(20))
    choices: Mapped[list[str] | None] = mapped_column(JSONData)
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Who declared it: ``core``, a plugin or a bundle name, or ``admin``.
    owner: Mapped[str] = mapped_column(String(120), default="admin")
    description: Mapped[str | None] = mapped_column(Text)


class LifecycleChange(Base):
    """One move of a contact between lifecycle stages, with its reason."""

    __tablename__ = "lifecycle_change"
    __table_args__ = (
        Index("ix_lifecycle_change_contact", "contact_id", "occurred_at"),
        # the moves into a stage in a range, whose contact and origin reports read (sales.conversion)
        Index("ix_lifecycle_change_to_stage", "to_stage", "occurred_at", "contact_id", "from_stage"),
        # Reports: "when did each contact first become a customer" and "did it ever reach a stage".
        Index("ix_lifecycle_change_stage_contact", "to_stage", "contact_id", "occurred_at", "from_stage"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    from_stage: Mapped[str | None] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id"))

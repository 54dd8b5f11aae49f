"""Consent (per purpose and channel, with its proof and history) and saved segments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigID, JSONData, UTCDateTime


class Consent(Base):
    """Where a contact stands for one purpose on one channel: the ledger's current state.

    ``status`` is ``granted``, ``withdrawn`` or ``pending`` (asked through a web
    form, waiting for the double opt-in click). The proof of the latest change
    is kept here; every change is also in :class:`ConsentEvent`.
    """

    __tablename__ = "consent"
    __table_args__ = (
        UniqueConstraint("contact_id", "purpose", "channel"),
        # "Every contact holding marketing consent by email": one index range.
        Index("ix_consent_purpose_channel_status", "purpose", "channel", "status", "contact_id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(255))
    ip: Mapped[str | None] = mapped_column(String(45))
    form_version: Mapped[str | None] = mapped_column(String(80))
    #: The wording the person agreed to.
    text: Mapped[str | None] = mapped_column(Text)


class ConsentEvent(Base):
    """One entry of the consent ledger: requested, granted, confirmed or withdrawn, with proof."""

    __tablename__ = "consent_event"
    __table_args__ = (Index("ix_consent_event_contact_time", "contact_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(20))
    #: ``requested`` (double opt-in pending), ``granted``, ``confirmed`` or ``withdrawn``.
    action: Mapped[str] = mapped_column(String(12))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(255))
    ip: Mapped[str | None] = mapped_column(String(45))
    form_version: Mapped[str | None] = mapped_column(String(80))
    text: Mapped[str | None] = mapped_column(Text)
    #: Who recorded it (``system``, ``user:rep@example.com``).
    actor: Mapped[str] = mapped_column(String(200))


class ConsentRequest(Base):
    """A double opt-in waiting for its confirmation click, bound to one address.

    The link mailed to ``email_normalized`` carries this row's id, its
    ``nonce`` and that address, signed; it confirms this request and nothing else.
    """

    __tablename__ = "consent_request"
    __table_args__ = (Index("ix_consent_request_contact", "contact_id", "requested_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    email_normalized: Mapped[str | None] = mapped_column(String(320))
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    #: ``[[purpose, channel], ...]`` asked for.
    purposes: Mapped[list[Any]] = mapped_column(JSONData)
    form_slug: Mapped[str | None] = mapped_column(String(120))
    #: The form's proof: ``{"at", "ip", "source", "form_version", "text"}``.
    proof: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_ip: Mapped[str | None] = mapped_column(String(45))


class Segment(Base):
    """A saved, named segment: a definition over contact data, compiled to SQL when used."""

    __tablename__ = "segment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONData)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

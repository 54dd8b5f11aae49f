"""Touchpoints (every sign of interest) and interactions (conversations with reps)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigID, JSONData, Money, UTCDateTime, unmanaged

#: Expression indexes, made by migrations on the databases that have them (core_0011: touchpoints in
#: ``COALESCE(source, utm_source)`` order, SQLite and PostgreSQL); schema comparisons leave them out.
EXPRESSION_PREFIX = "expr_"
unmanaged(EXPRESSION_PREFIX)


class TouchKind(StrEnum):
    """What kind of touchpoint was recorded."""

    FORM = "form"
    AD_CLICK = "ad_click"
    AFFILIATE_CLICK = "affiliate_click"
    LINK_CLICK = "link_click"
    EMAIL_OPEN = "email_open"
    EMAIL_CLICK = "email_click"
    VISIT = "visit"
    CALL = "call"
    MEETING = "meeting"
    CONVERSION = "conversion"
    IMPRESSION = "impression"


#: Touchpoints a rep enters by hand (the human ones).
MANUAL_KINDS = frozenset({TouchKind.CALL, TouchKind.VISIT, TouchKind.MEETING})


class Touchpoint(Base):
    """One recorded touch between a (possibly still anonymous) person and the company."""

    __tablename__ = "touchpoint"
    __table_args__ = (
        Index("ix_touchpoint_contact_time", "contact_id", "occurred_at"),
        # Reports: "the contact's last ad click (or first creditable touch) before a conversion", with the
        # click's ad or affiliate, from the index alone (core_0011).
        Index("ix_touchpoint_contact_kind_time", "contact_id", "kind", "occurred_at", "id", "ad", "affiliate"),
        # Reports: the clicks and conversions of a range, read from the index alone (ads, affiliates).
        Index("ix_touchpoint_kind_time", "kind", "occurred_at", "contact_id", "quantity", "ad", "affiliate"),
        # Reports: marketing.channels over all time or a range, read from the index alone.
        Index(
            "ix_touchpoint_time_channel",
            *("occurred_at", "source", "utm_source", "kind", "contact_id", "quantity", "currency", "value"),
        ),
        Index("ix_touchpoint_campaign_kind", "campaign", "kind"),
        Index("ix_touchpoint_ad_kind", "ad", "kind"),
        Index("ix_touchpoint_affiliate_kind", "affiliate", "kind"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str | None] = mapped_column(String(255))
    medium: Mapped[str | None] = mapped_column(String(255))
    campaign: Mapped[str | None] = mapped_column(String(255))
    ad: Mapped[str | None] = mapped_column(String(255))
    affiliate: Mapped[str | None] = mapped_column(String(255))
    referrer: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    utm_source: Mapped[str | None] = mapped_column(String(255))
    utm_medium: Mapped[str | None] = mapped_column(String(255))
    utm_campaign: Mapped[str | None] = mapped_column(String(255))
    utm_term: Mapped[str | None] = mapped_column(String(255))
    utm_content: Mapped[str | None] = mapped_column(String(255))
    #: Ad platform click id (gclid, fbclid, msclkid), bounded and untrusted.
    click_id: Mapped[str | None] = mapped_column(String(255))
    click_id_kind: Mapped[str | None] = mapped_column(String(16))
    #: Monetary value of a conversion.
    value: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    #: How many events this row stands for (imported impressions come aggregated).
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    #: The rep who logged it (calls, visits, meetings).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id"))
    notes: Mapped[str | None] = mapped_column(Text)
    #: Unique key of an external event, so a repeated import or post records it once.
    external_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)
    #: The tracked link clicked (``/r/<code>``), for clicks per link.
    link_id: Mapped[int | None] = mapped_column(ForeignKey("tracked_link.id", ondelete="SET NULL"), index=True)


class Interaction(Base):
    """A conversation or note a rep logs: call, meeting, email or note."""

    __tablename__ = "interaction"
    __table_args__ = (Index("ix_interaction_contact_time", "contact_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    direction: Mapped[str | None] = mapped_column(String(8))
    subject: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_minutes: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(String(120))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id"), index=True)
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunity.id", ondelete="SET NULL"), index=True)


#: Kinds of interaction a rep can log.
INTERACTION_KINDS = ("call", "meeting", "email", "note", "visit", "chat")


class AdSpend(Base):
    """What an ad platform reports per day and ad: impressions, clicks, spend.

    Imported (``crm touch import``) so click-through rates and real campaign
    costs can be computed; one row per day, source, campaign and ad.
    """

    __tablename__ = "ad_spend"
    __table_args__ = (
        UniqueConstraint("day", "source", "campaign", "ad"),
        Index("ix_ad_spend_campaign_day", "campaign", "day"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(255))
    campaign: Mapped[str] = mapped_column(String(255))
    ad: Mapped[str] = mapped_column(String(255), default="")
    affiliate: Mapped[str | None] = mapped_column(String(255))
    impressions: Mapped[int] = mapped_column(Integer, default=0)
    #: Clicks as the platform counted them (ours are the click touchpoints).
    platform_clicks: Mapped[int] = mapped_column(Integer, default=0)
    spend: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    currency: Mapped[str] = mapped_column(String(3))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime())

"""Lead capture on the web: tracked links, web forms, affiliates and attribution."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigID, JSONData, Money, UTCDateTime


class TrackedLink(Base):
    """A short link (``/r/<code>``) that records a click and redirects to :attr:`url`."""

    __tablename__ = "tracked_link"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    url: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(255))
    medium: Mapped[str | None] = mapped_column(String(255))
    campaign: Mapped[str | None] = mapped_column(String(255))
    ad: Mapped[str | None] = mapped_column(String(255))
    affiliate: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebForm(Base):
    """A website form defined by data: its fields, consent text, thank-you page and origins.

    ``fields`` is a list of ``{"name", "label", "type", "required", "maps_to",
    "choices", "max_length"}``; ``maps_to`` names a contact field (``email``,
    ``first_name``, …) or a custom field as ``custom.<name>``.
    """

    __tablename__ = "web_form"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSONData)
    #: The consent checkbox's text; no checkbox when empty.
    consent_text: Mapped[str | None] = mapped_column(Text)
    #: Purposes a ticked consent box grants (``marketing``, ``surveys``, …).
    consent_purposes: Mapped[list[str]] = mapped_column(JSONData, default=list)
    consent_required: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Where a browser goes after a submission (``None``: the built-in thank-you page).
    thank_you_url: Mapped[str | None] = mapped_column(Text)
    thank_you_message: Mapped[str | None] = mapped_column(Text)
    #: Origins (``https://www.example.com``) allowed to post; empty allows any.
    allowed_origins: Mapped[list[str]] = mapped_column(JSONData, default=list)
    #: Campaign and tags given to every submission.
    campaign: Mapped[str | None] = mapped_column(String(255))
    tags: Mapped[list[str]] = mapped_column(JSONData, default=list)
    #: Bumped on every change, so consent proof names the exact text shown.
    version: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Affiliate(Base):
    """A partner site that sends traffic; paid a commission on conversions it is credited with."""

    __tablename__ = "affiliate"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The value carried as ``affiliate`` on touchpoints and links.
    code: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    #: Commission rule: a percentage of the conversion value, plus a flat amount.
    commission_percent: Mapped[Decimal | None] = mapped_column(Money)
    commission_flat: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    #: Server-to-server postback, with ``{click_id}``, ``{value}``, ``{commission}``,
    #: ``{currency}``, ``{conversion_id}`` and ``{order_id}`` placeholders.
    postback_url: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ContactAttribution(Base):
    """A contact's first and last creditable touch (ad, affiliate, link, email click, form)."""

    __tablename__ = "contact_attribution"

    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True)
    first_touch_id: Mapped[int | None] = mapped_column(ForeignKey("touchpoint.id", ondelete="SET NULL"))
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_touch_id: Mapped[int | None] = mapped_column(ForeignKey("touchpoint.id", ondelete="SET NULL"))
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConversionAttribution(Base):
    """What a conversion is credited to: first and last touch, affiliate and commission."""

    __tablename__ = "conversion_attribution"
    __table_args__ = (
        Index("ix_conversion_attribution_affiliate_time", "affiliate_id", "occurred_at"),
        Index("ix_conversion_attribution_contact", "contact_id"),
    )

    touchpoint_id: Mapped[int] = mapped_column(ForeignKey("touchpoint.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    value: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    first_touch_id: Mapped[int | None] = mapped_column(ForeignKey("touchpoint.id", ondelete="SET NULL"))
    last_touch_id: Mapped[int | None] = mapped_column(ForeignKey("touchpoint.id", ondelete="SET NULL"))
    affiliate_id: Mapped[int | None] = mapped_column(ForeignKey("affiliate.id"))
    commission: Mapped[Decimal | None] = mapped_column(Money)
    details: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)

"""The email marketing tables, all prefixed ``email_marketing_``.

A campaign sends one template to the contacts of a segment. Each contact it
reaches (or skips, with the reason) is one :class:`Recipient` row: the
per-recipient idempotency record, the rendered message, and its delivery and
engagement state. Sequences (drips) are steps a contact is enrolled in.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigID, JSONData, Money, UTCDateTime


class CampaignState(StrEnum):
    """Where a campaign is: ``draft`` → ``scheduled`` → ``sending`` ⇄ ``paused`` → ``done``; or ``cancelled``."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"


class RecipientStatus(StrEnum):
    """What became of one recipient of a campaign."""

    #: Waiting for the A/B test's winner.
    HELD = "held"
    #: Rendered and waiting for its delivery batch.
    QUEUED = "queued"
    #: Being handed to the mail server right now (a crash leaves it here: see ``unknown``).
    SENDING = "sending"
    SENT = "sent"
    #: Refused for good by the mail server (5xx), or too many temporary refusals.
    FAILED = "failed"
    #: Accepted, then bounced back (a DSN arrived).
    BOUNCED = "bounced"
    #: Not sent, with the reason (no consent, suppressed, invalid address, template error).
    SKIPPED = "skipped"
    #: The worker died while handing it over: it may or may not have left, so it is never resent.
    UNKNOWN = "unknown"
    #: The campaign was cancelled before it was sent.
    CANCELLED = "cancelled"


#: Statuses that count as "handed to the mail server".
SENT_STATUSES = (RecipientStatus.SENT, RecipientStatus.BOUNCED)


class Template(Base):
    """An email template end users author: Jinja2 subject, HTML and optional text, in the sandbox."""

    __tablename__ = "email_marketing_template"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    subject: Mapped[str] = mapped_column(String(998))
    html: Mapped[str] = mapped_column(Text)
    #: The plain-text part; generated from the HTML when empty.
    text: Mapped[str | None] = mapped_column(Text)
    #: The shared layout the HTML is placed in (``email/layout.html`` under templates/).
    layout: Mapped[str] = mapped_column(String(200), default="email/layout.html")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Campaign(Base):
    """One send of a template to a segment, with its budget, schedule, state and owner."""

    __tablename__ = "email_marketing_campaign"
    __table_args__ = (Index("ix_email_marketing_campaign_state", "state", "send_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    goal: Mapped[str | None] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(20), default="email")
    #: The segment's name, resolved through ``crm_segment_query`` when sending starts.
    segment: Mapped[str] = mapped_column(String(120))
    template_id: Mapped[int] = mapped_column(ForeignKey("email_marketing_template.id"))
    budget: Mapped[Decimal | None] = mapped_column(Money)
    actual_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(12), default=CampaignState.DRAFT)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id"))
    #: When sending starts (UTC); with ``recipient_timezone``, the wall time in each recipient's zone.
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: ``YYYY-MM-DDTHH:MM`` local wall time, sent at that time in each recipient's time zone.
    local_send_at: Mapped[str | None] = mapped_column(String(16))
    #: A/B subject test: ``opens`` or ``clicks`` picks the winner; NULL: no test.
    ab_metric: Mapped[str | None] = mapped_column(String(10))
    ab_sample_percent: Mapped[int] = mapped_column(Integer, default=20)
    ab_wait_minutes: Mapped[int] = mapped_column(Integer, default=240)
    ab_winner: Mapped[str | None] = mapped_column(String(10))
    #: Bumped by every resume, so delivery jobs queued before a pause stand down.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    #: The last contact id the streaming fill has rendered and queued.
    fill_cursor: Mapped[int] = mapped_column(BigID, default=0)
    fill_done: Mapped[bool] = mapped_column(Boolean, default=False)
    batches: Mapped[int] = mapped_column(Integer, default=0)
    #: The earliest time the next delivery batch may start (the rate limit, as timers).
    next_batch_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The day sending started, in the CRM's zone: the day the ROI report charges the cost to.
    started_on: Mapped[date | None] = mapped_column(Date)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Variant(Base):
    """An A/B subject line of a campaign (``A``, ``B``, …)."""

    __tablename__ = "email_marketing_variant"
    __table_args__ = (UniqueConstraint("campaign_id", "label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("email_marketing_campaign.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(998))


class Recipient(Base):
    """One contact of one campaign: the idempotency record, the rendered message, what happened."""

    __tablename__ = "email_marketing_recipient"
    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id"),
        Index("ix_email_marketing_recipient_batch", "campaign_id", "batch", "status"),
        Index("ix_email_marketing_recipient_status", "campaign_id", "status"),
        Index("ix_email_marketing_recipient_contact", "contact_id", "last_engaged_at"),
        Index("ix_email_marketing_recipient_message", "message_id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("email_marketing_campaign.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    email: Mapped[str | None] = mapped_column(String(320))
    variant: Mapped[str | None] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12))
    #: Why it was skipped or failed (shown by ``crm campaign stats --skipped``).
    reason: Mapped[str | None] = mapped_column(String(500))
    #: The delivery batch (one outbox job, one SMTP connection).
    batch: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: When it may be sent (the campaign's time, or the wall time in the recipient's zone).
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    subject: Mapped[str | None] = mapped_column(String(998))
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The last open or click: what conversion attribution looks for.
    last_engaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    opens: Mapped[int] = mapped_column(Integer, default=0)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    complained_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LinkClick(Base):
    """One click on a rewritten link of a campaign message."""

    __tablename__ = "email_marketing_link_click"
    __table_args__ = (Index("ix_email_marketing_link_click_campaign", "campaign_id", "url_hash"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("email_marketing_campaign.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("email_marketing_recipient.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    #: sha1 of the URL, for grouping (URLs are too long for portable indexes).
    url_hash: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Suppression(Base):
    """An address never mailed again: unsubscribed, hard-bounced, complained, or added by hand."""

    __tablename__ = "email_marketing_suppression"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    #: ``unsubscribe``, ``bounce``, ``complaint`` or ``manual``.
    reason: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(String(500))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("email_marketing_campaign.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Conversion(Base):
    """A purchase credited to the campaign that last touched the buyer within the window."""

    __tablename__ = "email_marketing_conversion"
    __table_args__ = (Index("ix_email_marketing_conversion_campaign", "campaign_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("email_marketing_campaign.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("email_marketing_recipient.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchase.id", ondelete="CASCADE"), unique=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Sequence(Base):
    """A drip: steps sent to a contact after a lifecycle hook fires, until a stop condition holds."""

    __tablename__ = "email_marketing_sequence"
    __table_args__ = (Index("ix_email_marketing_sequence_trigger", "trigger", "active"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    #: The hook that enrols a contact (``crm_customer_became_dormant``).
    trigger: Mapped[str] = mapped_column(String(120))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Stop conditions: any of ``converted``, ``replied``, ``unsubscribed``.
    stop_on: Mapped[list[str]] = mapped_column(JSONData, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SequenceStep(Base):
    """One step of a sequence: after *delay_minutes*, send a template or remind the owner rep."""

    __tablename__ = "email_marketing_sequence_step"
    __table_args__ = (UniqueConstraint("sequence_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("email_marketing_sequence.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    delay_minutes: Mapped[int] = mapped_column(Integer)
    #: ``email`` or ``reminder``.
    action: Mapped[str] = mapped_column(String(10))
    template_id: Mapped[int | None] = mapped_column(ForeignKey("email_marketing_template.id"))
    #: The reminder's subject (``reminder`` steps).
    note: Mapped[str | None] = mapped_column(String(255))


class Enrollment(Base):
    """A contact going through a sequence."""

    __tablename__ = "email_marketing_enrollment"
    __table_args__ = (UniqueConstraint("sequence_id", "contact_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("email_marketing_sequence.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    #: ``active``, ``done`` or ``stopped``.
    state: Mapped[str] = mapped_column(String(10))
    #: The position of the next step.
    next_position: Mapped[int] = mapped_column(Integer, default=1)
    #: How many times it was started (a re-trigger after it ended starts it again).
    runs: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stop_reason: Mapped[str | None] = mapped_column(String(120))
    details: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)

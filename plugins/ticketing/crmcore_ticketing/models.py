"""The ticketing tables: tickets and their threads, SLA calendars, policies and metrics,
service contracts, and the knowledge base. All prefixed ``ticketing_``."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigID, JSONData, UTCDateTime, unmanaged

#: The knowledge base's full-text pieces are made by dialect-specific DDL in the migration.
FTS_TABLE = "ticketing_kb_fts"
unmanaged(FTS_TABLE)


class Status(StrEnum):
    """Where a ticket is. ``pending`` waits on the customer; ``on_hold`` on a third party."""

    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    SOLVED = "solved"
    CLOSED = "closed"


PRIORITIES = ("low", "normal", "high", "urgent")
CHANNELS = ("email", "web", "phone", "chat", "api")
CATEGORIES = ("question", "incident", "problem", "request", "complaint", "task")
METRICS = ("first_reply", "next_reply", "periodic_update", "resolution")


class Ticket(Base):
    """A customer's request, with its tracking number, people, state and SLA summary."""

    __tablename__ = "ticketing_ticket"
    __table_args__ = (
        Index("ix_ticketing_ticket_status_created", "status", "created_at"),
        Index("ix_ticketing_ticket_assignee_status", "assignee_id", "status"),
        Index("ix_ticketing_ticket_channel_created", "channel", "created_at"),
        Index("ix_ticketing_ticket_category_created", "category", "created_at"),
        Index("ix_ticketing_ticket_requester", "requester_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    #: What customers quote: ``TK-7F3K-9QWD``.
    number: Mapped[str] = mapped_column(String(24), unique=True)
    subject: Mapped[str] = mapped_column(String(255))
    requester_id: Mapped[int] = mapped_column(ForeignKey("contact.id"))
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id"))
    product: Mapped[str | None] = mapped_column(String(120))
    category: Mapped[str] = mapped_column(String(20), default="question")
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    status: Mapped[str] = mapped_column(String(10), default=Status.NEW)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id"))
    #: The group (a team of agents) the ticket belongs to.
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"))
    tags: Mapped[list[str]] = mapped_column(JSONData, default=list)
    channel: Mapped[str] = mapped_column(String(10))
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("ticketing_sla_policy.id"))
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("ticketing_contract.id"))
    #: Why this policy applies (an expired contract, a fallback), shown to the agent.
    sla_note: Mapped[str | None] = mapped_column(String(255))
    #: ``[[iso time, status], ...]``: the status timeline the SLA clocks pause on.
    status_log: Mapped[list[list[str]]] = mapped_column(JSONData, default=list)
    #: The ticket a follow-up was opened for (a reply to a closed ticket).
    follow_up_of_id: Mapped[int | None] = mapped_column(ForeignKey("ticketing_ticket.id"))
    #: An agent opened it with a public message (first reply is then the second one).
    opened_by_agent: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    solved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The earliest deadline of its running SLA metrics (``crm ticket list --breaching``).
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)


class Message(Base):
    """One message of a ticket's thread: a public reply or an internal note."""

    __tablename__ = "ticketing_message"
    __table_args__ = (Index("ix_ticketing_message_ticket", "ticket_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticketing_ticket.id", ondelete="CASCADE"))
    #: ``customer``, ``agent`` or ``system``.
    author_type: Mapped[str] = mapped_column(String(10))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id"))
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    channel: Mapped[str] = mapped_column(String(10))
    body: Mapped[str] = mapped_column(Text)
    #: The email ``Message-ID`` (incoming or outgoing), for threading replies.
    message_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Attachment(Base):
    """A file attached to a message, stored under the ``attachment_dir`` setting."""

    __tablename__ = "ticketing_attachment"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("ticketing_message.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    #: Path relative to the attachment folder.
    path: Mapped[str] = mapped_column(String(255))


class HistoryEntry(Base):
    """One change of a ticket: field, old value, new value, who and when."""

    __tablename__ = "ticketing_history"
    __table_args__ = (Index("ix_ticketing_history_ticket", "ticket_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticketing_ticket.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id"))
    actor: Mapped[str] = mapped_column(String(200))
    field: Mapped[str] = mapped_column(String(40))
    old_value: Mapped[str | None] = mapped_column(String(500))
    new_value: Mapped[str | None] = mapped_column(String(500))


class SlaCalendar(Base):
    """A business-hours schedule: weekly hours in a zone, holidays, closed days."""

    __tablename__ = "ticketing_sla_calendar"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    #: ``{"mon": [[32400, 61200]], ...}``: seconds after local midnight.
    hours: Mapped[dict[str, list[list[int]]]] = mapped_column(JSONData)
    holiday_country: Mapped[str | None] = mapped_column(String(2))
    holiday_region: Mapped[str | None] = mapped_column(String(10))
    #: ISO dates the schedule is closed on besides public holidays.
    closed_days: Mapped[list[str]] = mapped_column(JSONData, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SlaPolicy(Base):
    """An SLA policy: when it applies (conditions), its targets, warnings and escalations."""

    __tablename__ = "ticketing_sla_policy"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    #: Policies are tried in this order; the first whose conditions match applies.
    position: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: ``{"priority": [...], "channel": [...], "category": [...], "tier": [...], "organization": [ids]}``.
    conditions: Mapped[dict[str, list[Any]]] = mapped_column(JSONData, default=dict)
    #: ``{priority: {metric: {"minutes": 60, "business": true}}}``.
    targets: Mapped[dict[str, dict[str, dict[str, Any]]]] = mapped_column(JSONData)
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("ticketing_sla_calendar.id"))
    #: Statuses during which this policy's clocks pause.
    pause_statuses: Mapped[list[str]] = mapped_column(JSONData, default=list)
    #: ``["30m", "80%"]``: warn 30 minutes before the breach and at 80 % of the target.
    warnings: Mapped[list[str]] = mapped_column(JSONData, default=list)
    #: ``{metric: [{"after": "1h", "action": "reassign", "to": "lead@x"}, ...]}``.
    escalations: Mapped[dict[str, list[dict[str, Any]]]] = mapped_column(JSONData, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SlaMetric(Base):
    """One run of one SLA metric on a ticket (next reply and periodic update repeat)."""

    __tablename__ = "ticketing_sla_metric"
    __table_args__ = (
        Index("ix_ticketing_sla_metric_state_due", "state", "due_at"),
        Index("ix_ticketing_sla_metric_ticket", "ticket_id", "metric"),
        Index("ix_ticketing_sla_metric_policy", "policy_id", "metric"),
        Index("ix_ticketing_sla_metric_fulfilled", "metric", "fulfilled_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticketing_ticket.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(20))
    cycle: Mapped[int] = mapped_column(Integer, default=1)
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("ticketing_sla_policy.id"))
    priority: Mapped[str] = mapped_column(String(10))
    target_seconds: Mapped[int] = mapped_column(Integer)
    business: Mapped[bool] = mapped_column(Boolean, default=True)
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("ticketing_sla_calendar.id"))
    #: ``policy``, ``manual`` or ``hook:<plugin>``.
    target_source: Mapped[str] = mapped_column(String(60), default="policy")
    #: ``active``, ``paused``, ``fulfilled`` or ``cancelled``.
    state: Mapped[str] = mapped_column(String(10), default="active")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    manual_due: Mapped[bool] = mapped_column(Boolean, default=False)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Counted (business or calendar) time from start to fulfilment or now, pauses excluded.
    elapsed_seconds: Mapped[int] = mapped_column(Integer, default=0)
    #: Counted time spent paused.
    paused_seconds: Mapped[int] = mapped_column(Integer, default=0)
    #: Warning points already fired (their labels) and escalation levels done.
    warned: Mapped[list[str]] = mapped_column(JSONData, default=list)
    escalated: Mapped[int] = mapped_column(Integer, default=0)
    #: Generation of the metric's one pending timer job (``ticketing:sla:<id>:<seq>``) and its time.
    timer_seq: Mapped[int] = mapped_column(Integer, default=0)
    timer_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Contract(Base):
    """A customer's service contract: tier, product, dates, hours of cover."""

    __tablename__ = "ticketing_contract"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id"), index=True)
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id"), index=True)
    product: Mapped[str | None] = mapped_column(String(120))
    tier: Mapped[str] = mapped_column(String(40))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    #: Hours of cover: the schedule business-hours targets count on for this contract.
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("ticketing_sla_calendar.id"))
    reference: Mapped[str | None] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KbCategory(Base):
    """A knowledge-base category."""

    __tablename__ = "ticketing_kb_category"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)


class KbArticle(Base):
    """A knowledge-base article or FAQ entry (question = title, answer = body)."""

    __tablename__ = "ticketing_kb_article"
    __table_args__ = (Index("ix_ticketing_kb_article_status", "status", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(160), unique=True)
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    #: ``article`` or ``faq``.
    kind: Mapped[str] = mapped_column(String(10), default="article")
    #: ``draft`` or ``published``.
    status: Mapped[str] = mapped_column(String(10), default="draft")
    category_id: Mapped[int | None] = mapped_column(ForeignKey("ticketing_kb_category.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    helpful_yes: Mapped[int] = mapped_column(Integer, default=0)
    helpful_no: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class KbVersion(Base):
    """A saved version of an article's text."""

    __tablename__ = "ticketing_kb_version"
    __table_args__ = (UniqueConstraint("article_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("ticketing_kb_article.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KbVote(Base):
    """A "was this helpful?" answer."""

    __tablename__ = "ticketing_kb_vote"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("ticketing_kb_article.id", ondelete="CASCADE"), index=True)
    helpful: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TicketArticle(Base):
    """An article an agent used on a ticket."""

    __tablename__ = "ticketing_ticket_article"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticketing_ticket.id", ondelete="CASCADE"), primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("ticketing_kb_article.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime())

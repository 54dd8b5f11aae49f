"""The surveys tables: surveys and their triggers, invitations, responses and answers.

All prefixed ``surveys_``. A survey's questions, translations and rules live in
its validated definition (JSON); answers are rows, one per question (one per
chosen option for multiple choice), so every result is computed in SQL.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Date, Float, ForeignKey, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigID, JSONData, UTCDateTime


class SurveyState(StrEnum):
    """A survey is written as a draft, sent while active, and only read once closed."""

    DRAFT = "draft"
    ACTIVE = "active"
    CLOSED = "closed"


class Survey(Base):
    """A survey: its key, state and validated definition (questions, translations, rules)."""

    __tablename__ = "surveys_survey"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: What people type: ``support-csat``.
    key: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(10), default=SurveyState.DRAFT)
    #: Kind of the headline question (``nps``, ``csat``, ``ces``) or None without one.
    headline_kind: Mapped[str | None] = mapped_column(String(10))
    #: Responses keep no contact, subject or invitation link.
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONData)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SurveyTrigger(Base):
    """Send a survey when a hook fires (a ticket solved, a purchase): the listener's lookup table."""

    __tablename__ = "surveys_trigger"
    __table_args__ = (Index("ix_surveys_trigger_hook", "hook", "survey_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys_survey.id", ondelete="CASCADE"))
    hook: Mapped[str] = mapped_column(String(120))
    delay_seconds: Mapped[int] = mapped_column(Integer, default=0)
    #: The share of events that get an invitation, 0 to 1.
    sample_rate: Mapped[float] = mapped_column(Float, default=1.0)
    #: Event attributes that must equal these values (``{"won": true}``).
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)


class Invitation(Base):
    """One contact invited to one survey, what triggered it, and where it stands."""

    __tablename__ = "surveys_invitation"
    __table_args__ = (
        Index("ix_surveys_invitation_contact", "contact_id", "created_at"),
        # results: a survey's sent invitations in a time range, and whether they were answered
        Index("ix_surveys_invitation_survey_sent", "survey_id", "status", "sent_at", "responded", "agent_id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys_survey.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    #: ``scheduled``, ``sent``, ``skipped`` (no consent, survey closed, contact gone).
    status: Mapped[str] = mapped_column(String(10), default="scheduled")
    #: What sent it: ``hook:crm_ticket_solved``, ``segment:vip``, ``manual``.
    source: Mapped[str] = mapped_column(String(160))
    #: What it is about: ``ticket``, ``purchase``, ``opportunity``, ``campaign`` and its id.
    subject_kind: Mapped[str | None] = mapped_column(String(40))
    subject_id: Mapped[int | None] = mapped_column(BigID)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id", ondelete="SET NULL"))
    product: Mapped[str | None] = mapped_column(String(120))
    channel: Mapped[str | None] = mapped_column(String(40))
    language: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    send_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    skip_reason: Mapped[str | None] = mapped_column(String(120))
    #: Whether a response came (no time kept, so anonymous answers cannot be matched by time).
    responded: Mapped[bool] = mapped_column(Boolean, default=False)


class SurveyResponse(Base):
    """One response per invitation; its headline score is kept here for fast results."""

    __tablename__ = "surveys_response"
    __table_args__ = (
        # results: covering for the headline figures by survey, period and agent
        Index("ix_surveys_response_survey_time", "survey_id", "submitted_at", "score", "agent_id"),
        Index("ix_surveys_response_contact", "contact_id", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys_survey.id", ondelete="CASCADE"))
    #: NULL for anonymous surveys, whose responses are deduplicated by :attr:`invitation_hash`.
    invitation_id: Mapped[int | None] = mapped_column(
        ForeignKey("surveys_invitation.id", ondelete="SET NULL"), unique=True
    )
    invitation_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    subject_kind: Mapped[str | None] = mapped_column(String(40))
    subject_id: Mapped[int | None] = mapped_column(BigID)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id", ondelete="SET NULL"))
    product: Mapped[str | None] = mapped_column(String(120))
    channel: Mapped[str | None] = mapped_column(String(40))
    language: Mapped[str | None] = mapped_column(String(16))
    #: The headline question's score (the first NPS, CSAT or CES question).
    score: Mapped[int | None] = mapped_column(SmallInteger)
    #: False while only the headline score came (a score link in the email).
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    feedback_id: Mapped[int | None] = mapped_column(ForeignKey("feedback.id", ondelete="SET NULL"))
    #: Rules already applied (``detractor``, ``promoter``), so an update never repeats them.
    actions: Mapped[list[str]] = mapped_column(JSONData, default=list)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Answer(Base):
    """One answer: a score, a chosen option (one row per option) or a text."""

    __tablename__ = "surveys_answer"
    __table_args__ = (
        Index("ix_surveys_answer_response", "response_id"),
        Index("ix_surveys_answer_survey_question", "survey_id", "question", "score"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("surveys_response.id", ondelete="CASCADE"))
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys_survey.id", ondelete="CASCADE"))
    question: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(10))
    score: Mapped[int | None] = mapped_column(SmallInteger)
    choice: Mapped[str | None] = mapped_column(String(120))
    text: Mapped[str | None] = mapped_column(Text)


class DailyResults(Base):
    """The results' rollup: invitations and headline scores per survey, local day and one dimension.

    One row per survey, day (in the zone of :class:`RollupState`), ``dimension``
    (``all``, ``agent``, ``product``, ``channel`` or ``language``) and the value
    of that dimension's column (the others are NULL). Kept exact in the
    transaction of every write that changes what the results count (sending an
    invitation, recording or updating a response), and rebuilt from the raw rows
    by ``crm survey rollup`` (:mod:`crmcore_surveys.rollup`). Scores are counted
    by band, not by kind, so a survey's headline kind is applied when reading.
    Rows for one key may repeat (two first writers at once): readers sum them.
    """

    __tablename__ = "surveys_daily"
    __table_args__ = (
        Index("ix_surveys_daily_key", "survey_id", "dimension", "day", "agent_id", "product", "channel", "language"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys_survey.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    dimension: Mapped[str] = mapped_column(String(10))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id", ondelete="SET NULL"))
    product: Mapped[str | None] = mapped_column(String(120))
    channel: Mapped[str | None] = mapped_column(String(40))
    language: Mapped[str | None] = mapped_column(String(16))
    #: Invitations sent that day, and how many of them were answered.
    invitations: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    #: Responses given that day with a headline score, by score band, and the scores' sum.
    responses: Mapped[int] = mapped_column(Integer, default=0)
    high: Mapped[int] = mapped_column(Integer, default=0)  # 9-10
    middle: Mapped[int] = mapped_column(Integer, default=0)  # 7-8
    low: Mapped[int] = mapped_column(Integer, default=0)  # 0-6
    satisfied: Mapped[int] = mapped_column(Integer, default=0)  # 4 and more
    score_total: Mapped[int] = mapped_column(Integer, default=0)


class RollupState(Base):
    """The time zone the daily rollup is cut in (one row); results use it only in the CRM's zone."""

    __tablename__ = "surveys_rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone: Mapped[str] = mapped_column(String(64))
    rebuilt_at: Mapped[datetime] = mapped_column(UTCDateTime())

"""Sales: pipelines and stages, opportunities, activities, products, purchases, feedback."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigID, Money, UTCDateTime


class Pipeline(Base):
    """A sales process: an ordered list of stages."""

    __tablename__ = "pipeline"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class PipelineStage(Base):
    """One stage of a pipeline with its win probability (percent)."""

    __tablename__ = "pipeline_stage"
    __table_args__ = (UniqueConstraint("pipeline_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipeline.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(Integer)
    probability: Mapped[int] = mapped_column(Integer)
    #: ``open``, ``won`` or ``lost``.
    outcome: Mapped[str] = mapped_column(String(8), default="open")


class Opportunity(Base):
    """A possible sale moving through a pipeline."""

    __tablename__ = "opportunity"
    __table_args__ = (
        Index("ix_opportunity_status_stage", "status", "stage_id"),
        Index("ix_opportunity_owner_status", "owner_id", "status"),
        Index("ix_opportunity_contact", "contact_id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id"))
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipeline.id"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("pipeline_stage.id"))
    amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    currency: Mapped[str] = mapped_column(String(3))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id"))
    expected_close_on: Mapped[date | None] = mapped_column(Date)
    #: ``open``, ``won`` or ``lost``.
    status: Mapped[str] = mapped_column(String(8), default="open")
    lost_reason: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stage_entered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OpportunityStageChange(Base):
    """One move of an opportunity between stages (for cycle-time reports)."""

    __tablename__ = "opportunity_stage_change"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunity.id", ondelete="CASCADE"), index=True)
    from_stage_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_stage.id"))
    to_stage_id: Mapped[int] = mapped_column(ForeignKey("pipeline_stage.id"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id"))


class Activity(Base):
    """A planned call, meeting, task or follow-up, with an optional reminder."""

    __tablename__ = "activity"
    __table_args__ = (Index("ix_activity_owner_due", "owner_id", "done_at", "due_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(255))
    notes: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    remind_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"), index=True)
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunity.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Product(Base):
    """Something the company sells."""

    __tablename__ = "product"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    category: Mapped[str | None] = mapped_column(String(120))
    unit_price: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Purchase(Base):
    """An order a customer placed: who, when, which rep, special instructions."""

    __tablename__ = "purchase"
    __table_args__ = (
        Index("ix_purchase_contact_time", "contact_id", "purchased_at"),
        # the sales of a range, with what the reports read of them
        Index("ix_purchase_time", "purchased_at", "currency", "rep_id", "contact_id", "total"),
        Index("ix_purchase_rep_time", "rep_id", "purchased_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    purchased_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id"))
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal] = mapped_column(Money)
    special_instructions: Mapped[str | None] = mapped_column(Text)
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunity.id", ondelete="SET NULL"))
    #: The order number in the shop or ERP; recording it twice is refused.
    external_ref: Mapped[str | None] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PurchaseLine(Base):
    """One product line of a purchase."""

    __tablename__ = "purchase_line"
    __table_args__ = (Index("ix_purchase_line_product", "product_id", "purchase_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchase.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    line_total: Mapped[Decimal] = mapped_column(Money)


class Feedback(Base):
    """What a customer said: a rating and/or comment, from a survey, a rep or a plugin."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_contact_time", "contact_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(60))
    rating: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    #: What it is about: ``purchase``, ``ticket``, ``campaign``, … and its id.
    subject_kind: Mapped[str | None] = mapped_column(String(60))
    subject_id: Mapped[int | None] = mapped_column(BigID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

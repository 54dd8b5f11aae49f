"""System tables: the audit trail and the outbox of jobs and timers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigID, JSONData, UTCDateTime


class AuditEntry(Base):
    """Who changed what, and when."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id"))
    #: ``system``, ``user:<email>`` or ``plugin:<name>``.
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(120))
    entity: Mapped[str] = mapped_column(String(60))
    entity_id: Mapped[int | None] = mapped_column(BigID)
    changes: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)


class JobState(StrEnum):
    """Where a job is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    QUEUED = "queued"
    DONE = "done"
    DEAD = "dead"
    CANCELLED = "cancelled"


class Job(Base):
    """An outbox row: a side effect or timer, delivered at least once after commit.

    ``available_at`` is when the row may next be claimed: its due time while
    pending, its retry time after a failure, its lease expiry while running
    (so a row whose worker died is picked up again by the same indexed query).
    """

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_state_available", "state", "available_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    handler: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    state: Mapped[str] = mapped_column(String(12), default=JobState.PENDING)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    last_error: Mapped[str | None] = mapped_column(Text)
    locked_by: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class JobWorker(Base):
    """A running worker's heartbeat (for ``crm jobs stats`` and the SQLite warning)."""

    __tablename__ = "job_worker"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    backend: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MailDelivery(Base):
    """One email handed to the mail server (or refused by it), by idempotency key.

    Written right after the SMTP conversation in the job's transaction, so a
    retried job finds it and does not send the message a second time.
    """

    __tablename__ = "mail_delivery"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    message_id: Mapped[str] = mapped_column(String(255))
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    subject: Mapped[str] = mapped_column(String(255))
    #: ``sent`` or ``failed`` (permanently refused).
    status: Mapped[str] = mapped_column(String(12))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BundleRecord(Base):
    """What a bundle applied, per item: the data it wrote and the state that resulted."""

    __tablename__ = "bundle_record"
    __table_args__ = (UniqueConstraint("bundle", "kind", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bundle: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(60))
    key: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(40))
    #: Checksum of the bundle's data as last applied (a newer bundle changes it).
    data_checksum: Mapped[str] = mapped_column(String(64))
    #: Checksum of the item's state right after that (a user's edit changes it).
    state_checksum: Mapped[str] = mapped_column(String(64))
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())

"""The plugin's table: one row per welcome sent, prefixed with the plugin's name."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigID, UTCDateTime


class Welcome(Base):
    """A welcome queued for a new lead."""

    __tablename__ = "welcome_log"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime())

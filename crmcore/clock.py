"""Clocks: the only source of "now" in crmcore, so timers are testable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Return the wall-clock time in UTC."""
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to; for tests and simulations."""

    def __init__(self, at: datetime | str = "2026-01-05T09:00:00+00:00") -> None:
        self._now = _aware(datetime.fromisoformat(at) if isinstance(at, str) else at)

    def now(self) -> datetime:
        """Return the frozen time."""
        return self._now

    def set(self, at: datetime | str) -> None:
        """Jump to *at*."""
        self._now = _aware(datetime.fromisoformat(at) if isinstance(at, str) else at)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by *delta* (or ``timedelta(**kwargs)``) and return the new time."""
        self._now += delta if delta is not None else timedelta(**kwargs)
        return self._now


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a clock needs a timezone-aware datetime")
    return value.astimezone(UTC)

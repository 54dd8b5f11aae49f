"""Business-time arithmetic: weekly hours in a time zone, holidays, closed days.

Everything is interval arithmetic on the open intervals of each local day
(never a walk through minutes): :meth:`BusinessCalendar.add` consumes whole
intervals until the remainder fits in one, :meth:`BusinessCalendar.between`
sums the overlaps. Local wall-clock intervals are turned into UTC per day, so
a day with a daylight-saving change has its real length. Results are aware
UTC datetimes; durations are exact ``timedelta`` values (microseconds), so
``add(add(a, x), y) == add(a, x + y)`` holds exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from crmcore.errors import ConfigError, ValidationError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: How far ahead a deadline is searched before the calendar is declared closed for good.
HORIZON_DAYS = 3 * 366
_TIME = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_ZERO = timedelta(0)


class Clock(Protocol):
    """What the SLA engine needs from a schedule: add time, measure time."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant when *duration* of counted time has passed since *start*."""
        ...

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Counted time in ``[start, end]`` (zero when ``end <= start``)."""
        ...


class CalendarHours:
    """Calendar hours: every second counts (24x7)."""

    name = "calendar hours (24x7)"

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """*start* plus *duration*."""
        return start + duration

    def between(self, start: datetime, end: datetime) -> timedelta:
        """``end - start``, or zero."""
        return max(end - start, _ZERO)


CALENDAR_HOURS = CalendarHours()


def parse_clock_time(text: str, field: str) -> int:
    """``"09:30"`` as seconds after midnight; ``"24:00"`` is the end of the day."""
    match = _TIME.match(text.strip())
    if not match or (match.group(1) == "24" and match.group(2) != "00"):
        raise ValidationError({field: f"{text!r} is not a time of day (HH:MM, 00:00 to 24:00)"})
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60


def zone(name: str, field: str = "timezone") -> ZoneInfo:
    """The IANA time zone *name*, or a ValidationError naming it."""
    try:
        if not name or name != name.strip() or ".." in name or name.startswith("/"):
            raise ValueError
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(
            {field: f"{name!r} is not a time zone (use an IANA name such as Europe/Berlin)"}
        ) from None


def parse_hours(spec: str | Mapping[str, Any]) -> dict[str, list[tuple[int, int]]]:
    """Weekly hours from ``"mon-fri 09:00-12:00,13:00-17:00; sat 10:00-14:00"`` or a mapping.

    A mapping is ``{"mon": [["09:00", "12:00"], ...], ...}``. Intervals must
    not overlap and must end on the day they start (``24:00`` at the latest).
    """
    raw: dict[str, list[tuple[str, str]]] = {}
    errors: dict[str, str] = {}
    if isinstance(spec, str):
        for part in filter(None, (p.strip() for p in spec.split(";"))):
            days, _, ranges = part.partition(" ")
            try:
                names = _day_names(days)
            except ValueError as exc:
                errors["hours"] = str(exc)
                continue
            pairs: list[tuple[str, str]] = []
            for item in filter(None, (r.strip() for r in ranges.split(","))):
                start, dash, end = item.partition("-")
                if not dash:
                    errors["hours"] = f"{item!r} is not a range like 09:00-17:00"
                    continue
                pairs.append((start, end))
            for name in names:
                raw.setdefault(name, []).extend(pairs)
    else:
        for name, pairs in spec.items():
            if name not in DAYS:
                errors["hours"] = f"unknown day {name!r}; days: {', '.join(DAYS)}"
                continue
            raw[name] = [(str(a), str(b)) for a, b in pairs]
    hours: dict[str, list[tuple[int, int]]] = {}
    for name in DAYS:
        intervals: list[tuple[int, int]] = []
        for start_text, end_text in raw.get(name, []):
            try:
                opens = parse_clock_time(start_text, "hours")
                closes = parse_clock_time(end_text, "hours")
            except ValidationError as exc:
                errors.update(exc.errors)
                continue
            if closes <= opens:
                errors["hours"] = (
                    f"{name} {start_text}-{end_text}: an interval must end after it starts, on the same day "
                    "(split one that crosses midnight into two days)"
                )
                continue
            intervals.append((opens, closes))
        intervals.sort()
        for (a_start, a_end), (b_start, b_end) in pairwise(intervals):
            if b_start < a_end:
                errors["hours"] = (
                    f"{name}: intervals {_hhmm(a_start)}-{_hhmm(a_end)} and {_hhmm(b_start)}-{_hhmm(b_end)} overlap"
                )
        if intervals:
            hours[name] = intervals
    if not errors and not hours:
        errors["hours"] = "a business calendar needs at least one open interval in the week"
    if errors:
        raise ValidationError(errors)
    return hours


def format_hours(hours: Mapping[str, Sequence[Sequence[int]]]) -> str:
    """The weekly hours as ``"mon-fri 09:00-12:00,13:00-17:00; sat 10:00-14:00"``."""
    groups: list[tuple[list[str], str]] = []
    for name in DAYS:
        if not hours.get(name):
            continue
        ranges = ",".join(f"{_hhmm(a)}-{_hhmm(b)}" for a, b in hours[name])
        previous = groups[-1] if groups else None
        if previous and previous[1] == ranges and DAYS.index(previous[0][-1]) == DAYS.index(name) - 1:
            previous[0].append(name)
        else:
            groups.append(([name], ranges))
    return "; ".join(f"{days[0]}-{days[-1]} {r}" if len(days) > 1 else f"{days[0]} {r}" for days, r in groups)


def _day_names(text: str) -> list[str]:
    names: list[str] = []
    for item in text.lower().split(","):
        first, dash, last = item.partition("-")
        if first not in DAYS or (dash and last not in DAYS):
            raise ValueError(f"{text!r} is not a day or range of days like mon-fri")
        i, j = DAYS.index(first), DAYS.index(last) if dash else DAYS.index(first)
        if j < i:
            raise ValueError(f"{text!r}: a range of days runs forward, like mon-fri")
        names.extend(DAYS[i : j + 1])
    return names


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


@attrs.frozen
class ClosedDay:
    """A day the schedule is closed on, and why."""

    day: date
    reason: str


class BusinessCalendar:
    """A business-hours schedule: weekly hours in a zone, public holidays, closed days.

    >>> cal = BusinessCalendar("Europe/Berlin", "mon-fri 09:00-17:00")
    >>> cal.add(datetime(2026, 1, 9, 15, 0, tzinfo=UTC), timedelta(hours=4))  # Friday 16:00 Berlin
    datetime.datetime(2026, 1, 12, 11, 0, tzinfo=datetime.timezone.utc)
    """

    def __init__(
        self,
        timezone: str,
        hours: str | Mapping[str, Any],
        *,
        holiday_country: str | None = None,
        holiday_region: str | None = None,
        closed_days: Iterable[date | str] = (),
        name: str = "",
    ) -> None:
        self.name = name
        self.timezone = timezone
        self.zone = zone(timezone)
        if isinstance(hours, Mapping) and all(isinstance(v, list) and v and isinstance(v[0][0], int)
                                                 for v in hours.values()):  # fmt: skip
            self.hours = {k: [(int(a), int(b)) for a, b in v] for k, v in hours.items()}
        else:
            self.hours = parse_hours(hours)
        self._weekly = [self.hours.get(day, []) for day in DAYS]
        self.closed = {d if isinstance(d, date) else date.fromisoformat(d) for d in closed_days}
        self.holiday_country = holiday_country
        self.holiday_region = holiday_region
        self._holidays: Any = None
        if holiday_country:
            self._holidays = holiday_calendar(holiday_country, holiday_region)
        self._day_cache: dict[date, tuple[tuple[datetime, datetime], ...]] = {}

    def __repr__(self) -> str:
        return f"<BusinessCalendar {self.name or self.timezone}: {format_hours(self.hours)}>"

    # -- days -----------------------------------------------------------------

    def closed_reason(self, day: date) -> str | None:
        """Why the schedule is closed all of *day* (a holiday, a closed day), or None."""
        if day in self.closed:
            return "closed day"
        if self._holidays is not None:
            name = self._holidays.get(day)
            if name:
                return f"holiday: {name}"
        return None

    def intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The open intervals of local *day* as UTC pairs (empty on closed days)."""
        cached = self._day_cache.get(day)
        if cached is not None:
            return cached
        result: tuple[tuple[datetime, datetime], ...] = ()
        if self._weekly[day.weekday()] and self.closed_reason(day) is None:
            result = tuple((self._utc(day, start), self._utc(day, end)) for start, end in self._weekly[day.weekday()])
        if len(self._day_cache) > 4096:
            self._day_cache.clear()
        self._day_cache[day] = result
        return result

    def _utc(self, day: date, seconds: int) -> datetime:
        if seconds >= 86400:
            local = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
        else:
            local = datetime.combine(day, time(seconds // 3600, seconds % 3600 // 60), tzinfo=self.zone)
        return local.astimezone(UTC)

    def _days_from(self, instant: datetime) -> Iterator[date]:
        day = instant.astimezone(self.zone).date()
        for offset in range(HORIZON_DAYS):
            yield day + timedelta(days=offset)
        raise ConfigError(f"calendar {self.name or self.timezone} has no open hours in the next {HORIZON_DAYS} days")

    # -- arithmetic -----------------------------------------------------------

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant when *duration* of business time has passed since *start*.

        Outside business hours counting starts at the next opening; a zero
        duration returns *start* itself.
        """
        if duration <= _ZERO:
            return start
        remaining = duration
        for day in self._days_from(start):
            for opens, closes in self.intervals(day):
                if closes <= start:
                    continue
                begin = opens if opens > start else start
                available = closes - begin
                if available >= remaining:
                    return begin + remaining
                remaining -= available
        raise AssertionError("unreachable")  # pragma: no cover

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time inside ``[start, end]``."""
        total = _ZERO
        if end <= start:
            return total
        for day in self._days_from(start):
            day_intervals = self.intervals(day)
            if not day_intervals:
                if datetime.combine(day, time(0), tzinfo=self.zone) >= end:
                    return total
                continue
            for opens, closes in day_intervals:
                if opens >= end:
                    return total
                low = opens if opens > start else start
                high = closes if closes < end else end
                if high > low:
                    total += high - low
        return total  # pragma: no cover

    def closed_days_between(self, start: datetime, end: datetime) -> list[ClosedDay]:
        """Holidays and closed days (on otherwise open weekdays) between two instants."""
        found: list[ClosedDay] = []
        day, last = start.astimezone(self.zone).date(), end.astimezone(self.zone).date()
        while day <= last:
            reason = self.closed_reason(day)
            if reason and self._weekly[day.weekday()]:
                found.append(ClosedDay(day, reason))
            day += timedelta(days=1)
        return found

    def describe(self) -> str:
        """One line: zone, weekly hours, holidays and closed days."""
        parts = [f"{self.timezone}: {format_hours(self.hours)}"]
        if self.holiday_country:
            parts.append(f"holidays {self.holiday_country}{'-' + self.holiday_region if self.holiday_region else ''}")
        if self.closed:
            parts.append(f"{len(self.closed)} closed day(s)")
        return "; ".join(parts)


@lru_cache(maxsize=64)
def holiday_calendar(country: str, region: str | None) -> Any:
    """The ``holidays`` library's calendar for *country* (and *region*), or a ValidationError."""
    import holidays

    try:
        return holidays.country_holidays(country.upper(), subdiv=region or None)
    except NotImplementedError:
        raise ValidationError({"holidays": f"the holidays library knows no country {country!r}"}) from None
    except ValueError as exc:
        raise ValidationError({"region": f"{region!r} is not a region of {country}: {exc}"}) from None


def parse_duration(text: str | int, field: str = "duration") -> timedelta:
    """``"90m"``, ``"4h"``, ``"2d"`` (24h days), ``"1h30m"`` or plain minutes."""
    if isinstance(text, int):
        return timedelta(minutes=text)
    value = text.strip().lower()
    if value.isdigit():
        return timedelta(minutes=int(value))
    parts = re.findall(r"(\d+)\s*([dhm])", value)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != re.sub(r"\s+", "", value):
        raise ValidationError({field: f"{text!r} is not a duration like 30m, 4h, 2d or 1h30m"})
    units = {"d": 1440, "h": 60, "m": 1}
    return timedelta(minutes=sum(int(n) * units[u] for n, u in parts))


def format_duration(value: timedelta | None) -> str:
    """A duration as ``"26h 30m"`` (hours, so business time never reads as calendar days)."""
    if value is None:
        return ""
    minutes = int(value.total_seconds() // 60)
    sign = "-" if minutes < 0 else ""
    hours, mins = divmod(abs(minutes), 60)
    parts = [f"{hours}h" if hours else "", f"{mins}m" if mins or not hours else ""]
    return sign + " ".join(p for p in parts if p)

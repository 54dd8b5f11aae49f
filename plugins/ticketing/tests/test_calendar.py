"""Business-time arithmetic: weekly hours, lunch breaks, holidays, closed days, DST, and its laws."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from crmcore_ticketing.calendar import (
    CALENDAR_HOURS,
    BusinessCalendar,
    format_duration,
    format_hours,
    parse_duration,
    parse_hours,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from crmcore.errors import ValidationError

BERLIN = BusinessCalendar("Europe/Berlin", "mon-fri 09:00-12:00,13:00-17:00", holiday_country="DE",
                          holiday_region="BE", closed_days=["2026-12-24"])  # fmt: skip


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_counting_skips_the_lunch_break_and_the_night():
    # Monday 11:00 Berlin + 2h: 11:00-12:00, lunch, 13:00-14:00
    assert BERLIN.add(utc("2026-01-05T11:00:00+01:00"), timedelta(hours=2)) == utc("2026-01-05T14:00:00+01:00")
    # Monday 16:00 + 3h: one hour on Monday, two on Tuesday morning
    assert BERLIN.add(utc("2026-01-05T16:00:00+01:00"), timedelta(hours=3)) == utc("2026-01-06T11:00:00+01:00")


def test_a_start_outside_business_hours_counts_from_the_next_opening():
    # Saturday 10:00: nothing counts until Monday 09:00
    assert BERLIN.add(utc("2026-01-10T10:00:00+01:00"), timedelta(minutes=30)) == utc("2026-01-12T09:30:00+01:00")
    assert BERLIN.between(utc("2026-01-10T10:00:00+01:00"), utc("2026-01-12T09:30:00+01:00")) == timedelta(minutes=30)
    # during lunch
    assert BERLIN.add(utc("2026-01-05T12:20:00+01:00"), timedelta(minutes=10)) == utc("2026-01-05T13:10:00+01:00")


def test_public_holidays_and_custom_closed_days_are_skipped():
    # Wed 23 Dec 16:00 + 2h: 1h on the 23rd; the 24th is a custom closed day, 25th and 26th (Sat) holidays,
    # the 27th a Sunday: the second hour is Monday 28 Dec 09:00-10:00
    assert BERLIN.add(utc("2026-12-23T16:00:00+01:00"), timedelta(hours=2)) == utc("2026-12-28T10:00:00+01:00")
    closed = BERLIN.closed_days_between(utc("2026-12-23T16:00:00+01:00"), utc("2026-12-28T10:00:00+01:00"))
    assert [(c.day.isoformat(), c.reason) for c in closed] == [
        ("2026-12-24", "closed day"), ("2026-12-25", "holiday: Christmas Day"),
    ]  # fmt: skip
    # International Women's Day is a holiday in Berlin (BE), not in Bavaria
    bavaria = BusinessCalendar("Europe/Berlin", "mon-fri 09:00-17:00", holiday_country="DE", holiday_region="BY")
    berlin = BusinessCalendar("Europe/Berlin", "mon-fri 09:00-17:00", holiday_country="DE", holiday_region="BE")
    monday = utc("2027-03-08T09:00:00+01:00")
    assert bavaria.add(monday, timedelta(hours=1)) == utc("2027-03-08T10:00:00+01:00")
    assert berlin.add(monday, timedelta(hours=1)) == utc("2027-03-09T10:00:00+01:00")


def test_daylight_saving_changes_are_computed_in_the_schedules_zone():
    # Berlin springs forward on Sunday 29 March 2026: Friday 16:00 CET + 2h = Monday 10:00 CEST (08:00 UTC)
    assert BERLIN.add(utc("2026-03-27T16:00:00+01:00"), timedelta(hours=2)) == utc("2026-03-30T08:00:00+00:00")
    # and falls back on 25 October: opening time stays 09:00 local, which is 08:00 UTC after the change
    assert BERLIN.add(utc("2026-10-23T16:30:00+02:00"), timedelta(hours=1)) == utc("2026-10-26T08:30:00+00:00")


def test_an_interval_across_a_dst_gap_has_its_real_length():
    night = BusinessCalendar("Europe/Berlin", "sun 01:00-04:00")
    # on 29 March 2026 the clocks jump from 02:00 to 03:00: that Sunday's interval lasts two hours
    start = utc("2026-03-29T01:00:00+01:00")
    assert night.between(start, utc("2026-03-29T04:00:00+02:00")) == timedelta(hours=2)
    assert night.add(start, timedelta(hours=2)) == utc("2026-03-29T04:00:00+02:00")


def test_midnight_24_00_ends_a_day_and_time_zones_matter():
    late = BusinessCalendar("America/New_York", "mon-fri 20:00-24:00")
    start = utc("2026-01-05T20:00:00-05:00")
    assert late.add(start, timedelta(hours=4)) == utc("2026-01-06T00:00:00-05:00")
    assert late.add(start, timedelta(hours=5)) == utc("2026-01-06T21:00:00-05:00")


def test_bad_calendars_are_refused_with_the_reason():
    with pytest.raises(ValidationError, match="at least one open interval"):
        parse_hours("")
    with pytest.raises(ValidationError, match="crosses midnight"):
        parse_hours("fri 22:00-02:00")
    with pytest.raises(ValidationError, match="overlap"):
        parse_hours("mon 09:00-12:00,11:00-13:00")
    with pytest.raises(ValidationError, match="not a time of day"):
        parse_hours("mon 9-17")
    with pytest.raises(ValidationError, match="not a time zone"):
        BusinessCalendar("Europe/Atlantis", "mon 09:00-17:00")
    with pytest.raises(ValidationError, match="not a day"):
        parse_hours("monday-friday 09:00-17:00")


def test_hours_and_durations_read_and_print():
    hours = parse_hours("mon-fri 09:00-12:00,13:00-17:00; sat 10:00-14:00")
    assert format_hours(hours) == "mon-fri 09:00-12:00,13:00-17:00; sat 10:00-14:00"
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2d") == timedelta(hours=48)
    assert parse_duration("45") == timedelta(minutes=45)
    assert format_duration(timedelta(hours=26, minutes=5)) == "26h 5m"
    with pytest.raises(ValidationError):
        parse_duration("soon")


# -- the laws ---------------------------------------------------------------------------

instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))
durations = st.integers(min_value=0, max_value=60 * 24 * 40).map(lambda m: timedelta(minutes=m)) | st.integers(
    min_value=0, max_value=10**11
).map(lambda us: timedelta(microseconds=us))
calendars = st.sampled_from([
    BERLIN,
    BusinessCalendar("America/New_York", "mon-fri 08:30-12:00,12:30-17:30; sat 10:00-14:00", holiday_country="US"),
    BusinessCalendar("Australia/Sydney", "mon-sun 00:00-24:00"),
    BusinessCalendar("Asia/Kolkata", "mon-sat 09:30-18:00", holiday_country="IN", closed_days=["2026-01-26"]),
    CALENDAR_HOURS,
])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(calendar=calendars, start=instants, a=durations, b=durations)
def test_business_time_adds_up(calendar, start, a, b):
    """a + b is a then b, and the time between start and start + a is a."""
    assert calendar.add(start, a + b) == calendar.add(calendar.add(start, a), b)
    assert calendar.between(start, calendar.add(start, a)) == a


@settings(max_examples=300, deadline=None)
@given(calendar=calendars, start=instants, later=st.integers(0, 10**7), a=durations, b=durations)
def test_business_time_is_monotonic(calendar, start, later, a, b):
    """Later starts and longer targets never give earlier deadlines; elapsed time never shrinks."""
    other = start + timedelta(seconds=later)
    assert calendar.add(start, a) <= calendar.add(other, a)
    small, big = sorted([a, b])
    assert calendar.add(start, small) <= calendar.add(start, big)
    assert calendar.between(start, other) <= calendar.between(start, other + timedelta(hours=1))
    assert calendar.add(start, a) >= start

"""The daily rollups behind channels, products, ROI, ads and affiliates give exactly the figures of the raw rows.

Generated history up to a few days after the frozen clock (so the range
crosses settled days, the live tail and the future), then writes through the
services of every kind that can change a settled day: a capture today,
backdated touchpoints (a click that takes the credit for older sales, a
conversion with a value), a backdated purchase that becomes the contact's
first, a merge and an erasure; then the clock moves on so new days settle.
After each step every report, grouping and range is run from the rollup and
from the raw rows (the rollup switched off), and the two must agree; at the
end the incrementally kept rollup must equal one rebuilt from scratch.
Runs on every configured database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select

from crmcore.models import DirtyDay, Purchase, RollupState
from crmcore.models.rollup import AttributionDaily, ClickDaily, SaleDaily, TouchDaily
from crmcore.reports.rollup import rebuild
from crmcore.testing.reportdata import generate

ZONE = "America/New_York"
RUNS = [
    *(("marketing.channels", by, {}) for by in ("source", "campaign", "ad", "kind", "utm_source", "day", "month")),
    ("marketing.channels", "source", {"kind": "conversion"}),
    ("marketing.channels", "source", {"currency": "EUR"}),
    *(("marketing.products", by, {}) for by in ("product", "sku", "week", "month")),
    ("marketing.products", "product", {"currency": "EUR"}),
    *(("marketing.roi", by, {}) for by in ("campaign", "source", "affiliate")),
    *(("marketing.ads", by, {}) for by in ("ad", "campaign", "source")),
    ("marketing.ads", "ad", {"rank": "conversions", "currency": "EUR"}),
    ("marketing.affiliates", "affiliate", {}),
]
RANGES = [(None, None), ("2025-03-01", "2025-11-30"), ("2025-12-20", "2026-01-10"), ("2026-01-04", "2026-01-05")]


@pytest.fixture
def crm_settings() -> dict[str, Any]:
    return {"timezone": ZONE}


@pytest.fixture
def data(crm: Any) -> Any:
    # up to 2026-01-08, past the clock (2026-01-05 09:00 UTC)
    return generate(crm, contacts=120, seed=5, start=datetime(2025, 1, 10, tzinfo=UTC), days=363)


def figures(crm: Any) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Every run of every range, rows in report order."""
    return {
        (name, by, tuple(params.items()), start, end): crm.reports.run(
            name, by=by, start=start, end=end, params=params
        ).rows
        for name, by, params in RUNS
        for start, end in RANGES
    }


def raw_figures(crm: Any) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """The same runs with the rollup switched off (its state row set aside, then put back as it was)."""
    with crm.engine.begin() as connection:
        state = connection.execute(select(RollupState.__table__)).mappings().one()
        connection.execute(delete(RollupState))
    try:
        return figures(crm)
    finally:
        with crm.engine.begin() as connection:
            connection.execute(insert(RollupState), [dict(state)])


def assert_same(crm: Any) -> None:
    rolled, raw = figures(crm), raw_figures(crm)
    for key in raw:
        assert rolled[key] == raw[key], key


def rollup_rows(crm: Any) -> dict[str, list[tuple[Any, ...]]]:
    """The rollup tables' rows without ids, sorted (zero rows left out: a recomputed day drops them)."""
    out = {}
    with crm.engine.connect() as connection:
        for model in (TouchDaily, SaleDaily, AttributionDaily, ClickDaily):
            columns = [c for c in model.__table__.columns if c.name != "id"]
            rows = connection.execute(select(*columns)).all()
            out[model.__tablename__] = sorted((tuple(r) for r in rows), key=repr)
    return out


def dirty_days(crm: Any) -> int:
    with crm.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(DirtyDay)) or 0)


def a_buyer(crm: Any, *, purchases: int) -> tuple[int, list[datetime]]:
    """A contact with at least *purchases* purchases in settled days, and their times."""
    with crm.engine.connect() as connection:
        rows = connection.execute(
            select(Purchase.contact_id, func.count(), func.min(Purchase.purchased_at))
            .where(Purchase.purchased_at < datetime(2025, 11, 1, tzinfo=UTC))
            .group_by(Purchase.contact_id)
            .having(func.count() >= purchases)
            .order_by(Purchase.contact_id)
        ).all()
        contact_id = rows[0][0]
        times = connection.scalars(select(Purchase.purchased_at).where(Purchase.contact_id == contact_id)).all()
    return contact_id, sorted(times)


def test_rollup_figures_equal_raw_after_every_kind_of_write(crm: Any, data: Any, clock: Any) -> None:
    assert_same(crm)  # straight after the rebuild

    # a capture today, with a touch: no marker (today is not settled)
    crm.leads.capture(email="new.lead@example.com", touch={"kind": "ad_click", "source": "google", "ad": "ad-a"})
    assert dirty_days(crm) == 0

    # a click backdated before a buyer's sales takes their first-touch credit (settled days change)
    buyer, times = a_buyer(crm, purchases=2)
    crm.touchpoints.record(
        buyer, kind="ad_click", source="late-source", campaign="late-campaign", ad="ad-late",
        occurred_at=times[0] - timedelta(days=3),
    )  # fmt: skip
    assert dirty_days(crm) >= 2  # the click's day and its sales' days

    # a backdated conversion with a value, and an anonymous backdated impression
    crm.touchpoints.record(
        buyer, kind="conversion", source="late-source", value="75.50", currency="USD",
        occurred_at=datetime(2025, 6, 2, 15, 0, tzinfo=UTC),
    )  # fmt: skip
    crm.touchpoints.record(None, kind="impression", source="late-source", quantity=40,
                           occurred_at=datetime(2025, 6, 3, 3, 30, tzinfo=UTC))  # fmt: skip
    assert_same(crm)
    assert dirty_days(crm) == 0  # the reports refreshed the marked days

    # a backdated purchase earlier than all of a repeat buyer's: it becomes their first (acquisition moves)
    repeat, repeat_times = a_buyer(crm, purchases=2)
    crm.customers.record_purchase(
        repeat, sku="PRO", price=Decimal("10.00"), purchased_at=repeat_times[0] - timedelta(days=10)
    )
    assert dirty_days(crm) >= 2
    assert_same(crm)

    # a merge moves touchpoints and sales to the survivor: both contacts' attribution changes
    with crm.engine.connect() as connection:
        buyers = connection.scalars(
            select(Purchase.contact_id).group_by(Purchase.contact_id).order_by(Purchase.contact_id).limit(4)
        ).all()
    crm.contacts.merge(buyers[2], buyers[3])
    assert_same(crm)

    # an erasure keeps touchpoints and sales (aggregates): the figures stay as they were
    before = figures(crm)
    crm.contacts.erase(buyers[1])
    assert figures(crm) == before
    assert_same(crm)

    # days settle as the clock moves on; today's capture is rolled up, today's writes read live
    clock.advance(days=3)
    crm.touchpoints.record(buyer, kind="form", source="web", occurred_at=clock.now() - timedelta(hours=1))
    assert_same(crm)
    with crm.engine.connect() as connection:
        rolled_until = connection.scalar(select(RollupState.rolled_until))
    assert str(rolled_until) == "2026-01-07"

    # what the writes and refreshes kept equals a rebuild from scratch
    kept = rollup_rows(crm)
    with crm.engine.begin() as connection:
        rebuild(connection, ZONE, clock.now())
    assert rollup_rows(crm) == kept
    assert_same(crm)


def test_another_zone_reads_the_raw_rows_until_a_rebuild(crm: Any, data: Any, clock: Any) -> None:
    """The rollup is cut in New York days; a CRM in Tehran time computes from the raw rows, then rebuilds."""
    from crmcore import CRM

    other = CRM(database_url=crm.engine.url.render_as_string(hide_password=False), plugins=[], clock=clock,
                environment="test", timezone="Asia/Tehran")  # fmt: skip
    try:
        runs = [("marketing.channels", "day"), ("marketing.products", "day"), ("marketing.roi", "campaign")]
        before = [other.reports.run(name, by=by, start="2025-06-01", end="2025-06-30").rows for name, by in runs]
        with other.engine.begin() as connection:
            rebuild(connection, "Asia/Tehran", clock.now())
        after = [other.reports.run(name, by=by, start="2025-06-01", end="2025-06-30").rows for name, by in runs]
        assert after == before
        assert before != [crm.reports.run(name, by=by, start="2025-06-01", end="2025-06-30").rows
                          for name, by in runs[:2]] + [before[2]]  # fmt: skip
    finally:
        other.dispose()


def test_the_live_windows_are_cut_to_the_range() -> None:
    """Every bound is a tight one (SQLite may search an index by the looser of two lower bounds)."""
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    from sqlalchemy import DateTime, column

    from crmcore.reports.rollup import Coverage

    at = column("at", DateTime(timezone=True))
    utc = ZoneInfo("UTC")
    dirty = (datetime(2024, 5, 5).date(), datetime(2025, 3, 3).date())
    cover = Coverage(zone=utc, rolled_until=datetime(2025, 12, 20).date(), dirty=dirty)

    def bounds(start: datetime | None, end: datetime | None) -> list[Any]:
        condition = cover.live(SimpleNamespace(start=start, end=end), at).compile()
        return sorted(condition.params.values(), key=str)

    year = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    assert bounds(*year) == [datetime(2025, 3, 3, tzinfo=UTC), datetime(2025, 3, 4, tzinfo=UTC),
                             datetime(2025, 12, 20, tzinfo=UTC), year[1]]  # fmt: skip
    assert bounds(None, None) == [datetime(2024, 5, 5, tzinfo=UTC), datetime(2024, 5, 6, tzinfo=UTC),
                                  datetime(2025, 3, 3, tzinfo=UTC), datetime(2025, 3, 4, tzinfo=UTC),
                                  datetime(2025, 12, 20, tzinfo=UTC)]  # fmt: skip
    late = datetime(2025, 12, 24, tzinfo=UTC)
    assert bounds(late, None) == [late]
    assert bounds(year[0], datetime(2025, 2, 1, tzinfo=UTC)) == []  # all rolled up: nothing live


def conversions(crm: Any, name: str, by: str, start: str | None = None, end: str | None = None) -> dict[Any, int]:
    """A report's conversions per key (keys without any left out)."""
    result = crm.reports.run(name, by=by, start=start, end=end)
    key = result.columns[0].name
    return {row[key]: row["conversions"] for row in result.rows if row["conversions"]}


def test_last_click_rollup_credits_each_conversion_once(crm: Any, clock: Any) -> None:
    """Ads and affiliates from ``report_click_daily``: the settled days, the live edge and late writes.

    Built by hand so every figure is known: a click without an ad counts under
    None, a conversion with no click before it is left out, a late conversion
    and a late click move the figures of a settled day, and the rollup the
    refreshes kept equals a rebuilt one.
    """
    day = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)
    record = crm.touchpoints.record
    people = [crm.contacts.add(email=f"click{n}@example.com").id for n in range(5)]
    a, b, c, d, e = people
    record(a, kind="ad_click", source="google", campaign="summer", ad="ad-x", occurred_at=day - timedelta(days=1))
    record(a, kind="affiliate_click", affiliate="blog-one", occurred_at=day - timedelta(hours=2))
    record(a, kind="conversion", quantity=2, occurred_at=day)
    record(b, kind="ad_click", source="bing", occurred_at=day - timedelta(days=2))  # no ad: credited to None
    record(b, kind="conversion", occurred_at=day)
    record(c, kind="conversion", occurred_at=day)  # no click before it: left out
    record(c, kind="ad_click", source="google", ad="ad-x", occurred_at=day + timedelta(hours=1))
    record(e, kind="ad_click", source="google", ad="ad-y", occurred_at=day)
    with crm.engine.begin() as connection:
        rebuild(connection, ZONE, clock.now())
    with crm.engine.connect() as connection:
        rolled = connection.execute(select(ClickDaily.kind, ClickDaily.dimension, ClickDaily.value,
                                           ClickDaily.conversions)).all()  # fmt: skip
    assert sorted(rolled, key=repr) == sorted([
        ("ad_click", "ad", "ad-x", 2), ("ad_click", "ad", None, 1),
        ("ad_click", "campaign", "summer", 2), ("ad_click", "campaign", None, 1),
        ("ad_click", "source", "google", 2), ("ad_click", "source", "bing", 1),
        ("affiliate_click", "affiliate", "blog-one", 2),
    ], key=repr)  # fmt: skip
    assert conversions(crm, "marketing.ads", "ad") == {"ad-x": 2, None: 1}
    assert conversions(crm, "marketing.ads", "source", "2025-06-01", "2025-06-30") == {"google": 2, "bing": 1}
    assert conversions(crm, "marketing.ads", "ad", "2025-06-03", "2025-06-30") == {}
    assert conversions(crm, "marketing.affiliates", "affiliate") == {"blog-one": 2}

    # the live edge: today's click and conversion are read from the raw rows
    record(d, kind="ad_click", source="google", ad="ad-z", occurred_at=clock.now() - timedelta(hours=2))
    record(d, kind="conversion", occurred_at=clock.now() - timedelta(hours=1))
    assert dirty_days(crm) == 0
    assert conversions(crm, "marketing.ads", "ad") == {"ad-x": 2, None: 1, "ad-z": 1}

    # a late conversion credited to a settled click, and a late click that takes over a settled conversion
    record(e, kind="conversion", quantity=3, occurred_at=day + timedelta(days=3))
    record(b, kind="ad_click", source="bing", ad="ad-late", occurred_at=day - timedelta(days=1))
    record(b, kind="affiliate_click", affiliate="deals-site", occurred_at=day - timedelta(days=5))
    assert dirty_days(crm) >= 2
    expected = {"ad-x": 2, "ad-late": 1, "ad-y": 3, "ad-z": 1}
    assert conversions(crm, "marketing.ads", "ad") == expected
    assert conversions(crm, "marketing.affiliates", "affiliate") == {"blog-one": 2, "deals-site": 1}
    assert dirty_days(crm) == 0  # the report refreshed the marked days
    assert_same(crm)

    # days settle: the live edge is rolled up; then a rebuild from scratch holds the same rows
    clock.advance(days=3)
    assert conversions(crm, "marketing.ads", "ad") == expected
    with crm.engine.connect() as connection:
        assert connection.scalar(select(func.sum(ClickDaily.conversions)).where(ClickDaily.value == "ad-z")) == 1
    kept = rollup_rows(crm)
    with crm.engine.begin() as connection:
        rebuild(connection, ZONE, clock.now())
    assert rollup_rows(crm) == kept
    assert conversions(crm, "marketing.ads", "ad") == expected


def test_core_0012_backfills_the_click_rollup_and_downgrades(crm: Any, data: Any) -> None:
    """Upgrading a built rollup fills report_click_daily for the days it holds, as a rebuild would."""
    from alembic import command
    from sqlalchemy import inspect

    from crmcore.migrate import alembic_config, schema_diff

    built = rollup_rows(crm)["report_click_daily"]
    assert built  # the generated history has credited conversions
    with crm.engine.begin() as connection:
        command.downgrade(alembic_config(crm, connection), "core_0011")
    with crm.engine.connect() as connection:
        assert "report_click_daily" not in inspect(connection).get_table_names()
    crm.db_upgrade()
    assert schema_diff(crm) == []
    assert rollup_rows(crm)["report_click_daily"] == built
    assert_same(crm)


def test_an_anonymous_click_given_to_a_contact_takes_the_credit_of_settled_conversions(crm: Any, clock: Any) -> None:
    """A form claims the visitor's earlier clicks (``claim_touches``): the conversions after them change hands."""
    from crmcore.links import claim_touches
    from crmcore.models import Contact

    day = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)
    person = crm.contacts.add(email="visitor@example.com").id
    crm.touchpoints.record(person, kind="ad_click", source="google", ad="ad-known", occurred_at=day - timedelta(days=3))
    crm.touchpoints.record(person, kind="conversion", occurred_at=day)
    anonymous = crm.touchpoints.record(None, kind="ad_click", source="bing", ad="ad-anonymous",
                                       occurred_at=day - timedelta(days=1)).id  # fmt: skip
    with crm.engine.begin() as connection:
        rebuild(connection, ZONE, clock.now())
    assert conversions(crm, "marketing.ads", "ad") == {"ad-known": 1}
    with crm.transaction() as ctx:
        assert claim_touches(ctx, ctx.session.get(Contact, person), [anonymous]) == 1
    assert conversions(crm, "marketing.ads", "ad") == {"ad-anonymous": 1}
    assert_same(crm)

"""The core reports' figures computed a second way: pure Python over the generated rows.

Written from the reports' descriptions, without the report code, so a test
comparing both catches a wrong join, filter, zone or division in either.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

CREDITABLE = {"ad_click", "affiliate_click", "link_click", "email_click", "form"}
AGE_BANDS = (("65+", 65), ("55-64", 55), ("45-54", 45), ("35-44", 35), ("25-34", 25), ("18-24", 18), ("0-17", 0))
TOUCH_BUCKETS = (("21+", 21), ("11-20", 11), ("6-10", 6), ("5", 5), ("4", 4), ("3", 3), ("2", 2), ("1", 1))


class Scope:
    """The parameters a report ran with, as plain Python checks."""

    def __init__(
        self, ds: Any, zone: str, start: date | None, end: date | None, *, segment: set[int] | None = None,
        currency: str = "USD", now: datetime | None = None,
    ) -> None:  # fmt: skip
        self.ds, self.zone, self.start_date, self.end_date = ds, ZoneInfo(zone), start, end
        self.segment, self.currency, self.now = segment, currency, now
        self.start = datetime.combine(start, time(0), tzinfo=self.zone).astimezone(UTC) if start else None
        self.end = datetime.combine(end + timedelta(days=1), time(0), tzinfo=self.zone).astimezone(UTC) if end else None
        self.users = {u["id"]: u for u in ds["crm_user"]}
        self.contacts = {c["id"]: c for c in ds["contact"]}
        self.touches_by_contact: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for touch in ds["touchpoint"]:
            if touch["contact_id"] is not None:
                self.touches_by_contact[touch["contact_id"]].append(touch)

    def in_range(self, at: datetime | None) -> bool:
        if at is None:
            return False
        return (self.start is None or at >= self.start) and (self.end is None or at < self.end)

    def in_dates(self, day: date | None) -> bool:
        if day is None:
            return self.start_date is None and self.end_date is None
        return (self.start_date is None or day >= self.start_date) and (self.end_date is None or day <= self.end_date)

    def in_segment(self, contact_id: int | None) -> bool:
        return self.segment is None or contact_id in self.segment

    def label(self, at: datetime | date | None, unit: str) -> str | None:
        if at is None:
            return None
        day = at.astimezone(self.zone).date() if isinstance(at, datetime) else at
        if unit == "day":
            return day.isoformat()
        if unit == "week":
            return (day - timedelta(days=day.weekday())).isoformat()
        if unit == "month":
            return day.strftime("%Y-%m")
        if unit == "quarter":
            return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
        return str(day.year)

    def user_name(self, user_id: int | None) -> str | None:
        return self.users[user_id]["name"] if user_id is not None else None


PERIODS = ("day", "week", "month", "quarter", "year")


def touch_key(touch: dict[str, Any], by: str) -> Any:
    if by in ("source", "medium", "campaign"):
        return touch[by] if touch[by] is not None else touch[f"utm_{by}"]
    return touch[by]


def ratio(num: Any, den: Any) -> float | None:
    return float(num) / float(den) if den else None


def mean(values: Iterable[Any]) -> float | None:
    items = [float(v) for v in values if v is not None]
    return sum(items) / len(items) if items else None


def days(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 86400


def _rows(groups: dict[Any, Any], finish: Callable[[Any], dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {key: finish(value) for key, value in groups.items()}


def _credited_click(scope: Scope, conversion: dict[str, Any], kind: str) -> dict[str, Any] | None:
    clicks = [
        t for t in scope.touches_by_contact.get(conversion["contact_id"], [])
        if t["kind"] == kind and t["occurred_at"] <= conversion["occurred_at"]
    ]  # fmt: skip
    return max(clicks, key=lambda t: (t["occurred_at"], t["id"])) if clicks else None


def ads(scope: Scope, by: str) -> dict[Any, dict[str, Any]]:
    groups: dict[Any, dict[str, Any]] = defaultdict(lambda: {"impressions": 0, "clicks": 0, "conversions": 0,
                                                             "spend": Decimal(0)})  # fmt: skip
    for row in scope.ds["ad_spend"]:
        if scope.in_dates(row["day"]):
            key = (row["ad"] or None) if by == "ad" else row[by]
            groups[key]["impressions"] += row["impressions"]
            if row["currency"] == scope.currency:
                groups[key]["spend"] += row["spend"]
    for touch in scope.ds["touchpoint"]:
        if not (scope.in_range(touch["occurred_at"]) and scope.in_segment(touch["contact_id"])):
            continue
        if touch["kind"] == "ad_click":
            groups[touch_key(touch, by)]["clicks"] += touch["quantity"]
        elif touch["kind"] == "conversion" and touch["contact_id"] is not None:
            click = _credited_click(scope, touch, "ad_click")
            if click is not None:
                groups[touch_key(click, by)]["conversions"] += touch["quantity"]

    def finish(g: dict[str, Any]) -> dict[str, Any]:
        return {**g, "ctr": ratio(g["clicks"], g["impressions"]),
                "conversion_rate": ratio(g["conversions"], g["clicks"]),
                "cost_per_click": g["spend"] / g["clicks"] if g["clicks"] else None}  # fmt: skip

    return _rows(groups, finish)


def affiliates(scope: Scope, by: str) -> dict[Any, dict[str, Any]]:
    groups: dict[Any, dict[str, Any]] = defaultdict(lambda: {"clicks": 0, "contacts": set(), "conversions": 0})
    for touch in scope.ds["touchpoint"]:
        if not (scope.in_range(touch["occurred_at"]) and scope.in_segment(touch["contact_id"])):
            continue
        if touch["kind"] == "affiliate_click":
            group = groups[touch["affiliate"]]
            group["clicks"] += touch["quantity"]
            if touch["contact_id"] is not None:
                group["contacts"].add(touch["contact_id"])
        elif touch["kind"] == "conversion" and touch["contact_id"] is not None:
            click = _credited_click(scope, touch, "affiliate_click")
            if click is not None:
                groups[click["affiliate"]]["conversions"] += touch["quantity"]
    return _rows(groups, lambda g: {"clicks": g["clicks"], "contacts": len(g["contacts"]),
                                    "conversions": g["conversions"],
                                    "conversion_rate": ratio(g["conversions"], g["clicks"])})  # fmt: skip


def channels(scope: Scope, by: str, kind: str | None = None) -> dict[Any, dict[str, Any]]:
    groups: dict[Any, dict[str, Any]] = defaultdict(
        lambda: {"touchpoints": 0, "contacts": set(), "conversions": 0, "conversion_value": Decimal(0)}
    )
    for touch in scope.ds["touchpoint"]:
        if not (scope.in_range(touch["occurred_at"]) and scope.in_segment(touch["contact_id"])):
            continue
        if kind and touch["kind"] != kind:
            continue
        key = scope.label(touch["occurred_at"], by) if by in PERIODS else touch_key(touch, by)
        group = groups[key]
        group["touchpoints"] += touch["quantity"]
        if touch["contact_id"] is not None:
            group["contacts"].add(touch["contact_id"])
        if touch["kind"] == "conversion":
            group["conversions"] += touch["quantity"]
            if touch["value"] is not None and touch["currency"] == scope.currency:
                group["conversion_value"] += touch["value"]
    return _rows(groups, lambda g: {**g, "contacts": len(g["contacts"])})


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def demographics(scope: Scope, by: str, stage: str = "customer") -> dict[Any, dict[str, Any]]:
    organizations = {o["id"]: o for o in scope.ds["organization"]}
    revenue: dict[int, Decimal] = defaultdict(Decimal)
    for purchase in scope.ds["purchase"]:
        if scope.in_range(purchase["purchased_at"]) and purchase["currency"] == scope.currency:
            revenue[purchase["contact_id"]] += purchase["total"]
    as_of = scope.end_date or scope.now.astimezone(scope.zone).date()  # type: ignore[union-attr]
    groups: dict[Any, dict[str, Any]] = defaultdict(lambda: {"contacts": 0, "buyers": 0, "revenue": Decimal(0)})
    population = 0
    for contact in scope.contacts.values():
        if contact["erased_at"] or contact["merged_into_id"] or not scope.in_segment(contact["id"]):
            continue
        if stage != "all" and contact["stage"] != stage:
            continue
        organization = organizations.get(contact["organization_id"]) or {}
        if by == "age_band":
            born = contact["birth_date"]
            key = None if born is None else next(b for b, low in AGE_BANDS if _age(born, as_of) >= low)
        elif by == "owner":
            key = scope.user_name(contact["owner_id"])
        elif by.startswith("organization."):
            key = organization.get(by.removeprefix("organization."))
        elif by.startswith("custom."):
            key = contact["custom"].get(by.removeprefix("custom."))
        else:
            key = contact[by]
        population += 1
        group = groups[key]
        group["contacts"] += 1
        if contact["id"] in revenue:
            group["buyers"] += 1
            group["revenue"] += revenue[contact["id"]]
    return _rows(groups, lambda g: {
        **g, "share": ratio(g["contacts"], population),
        "revenue_per_buyer": g["revenue"] / g["buyers"] if g["buyers"] else None,
    })  # fmt: skip


def products(scope: Scope, by: str, band: int = 50) -> dict[Any, dict[str, Any]]:
    purchases = {p["id"]: p for p in scope.ds["purchase"]}
    catalogue = {p["id"]: p for p in scope.ds["product"]}
    groups: dict[Any, dict[str, Any]] = defaultdict(lambda: {"units": 0, "orders": set(), "revenue": Decimal(0),
                                                             "prices": []})  # fmt: skip
    for line in scope.ds["purchase_line"]:
        purchase = purchases[line["purchase_id"]]
        if not (scope.in_range(purchase["purchased_at"]) and purchase["currency"] == scope.currency):
            continue
        if not scope.in_segment(purchase["contact_id"]):
            continue
        product = catalogue[line["product_id"]]
        if by in PERIODS:
            key = scope.label(purchase["purchased_at"], by)
        elif by == "product":
            key = f"{product['name']} ({product['sku']})"
        elif by == "price_band":
            lower = int(line["unit_price"] // band) * band
            key = f"{lower}-{lower + band}"
        else:
            key = product[by]
        group = groups[key]
        group["units"] += line["quantity"]
        group["orders"].add(purchase["id"])
        group["revenue"] += line["line_total"]
        group["prices"].append(line["unit_price"])
    return _rows(groups, lambda g: {
        "units": g["units"], "orders": len(g["orders"]), "revenue": g["revenue"], "min_price": min(g["prices"]),
        "max_price": max(g["prices"]), "avg_price": g["revenue"] / g["units"],
    })  # fmt: skip


def _first_customer(scope: Scope) -> dict[int, datetime]:
    converted: dict[int, datetime] = {}
    for change in scope.ds["lifecycle_change"]:
        if change["to_stage"] == "customer":
            at = converted.get(change["contact_id"])
            converted[change["contact_id"]] = min(at, change["occurred_at"]) if at else change["occurred_at"]
    return {c: at for c, at in converted.items() if scope.in_range(at) and scope.in_segment(c)}


def touches(scope: Scope, by: str) -> dict[Any, dict[str, Any]]:
    groups: dict[Any, list[tuple[int, float | None]]] = defaultdict(list)
    for contact_id, converted_at in _first_customer(scope).items():
        before = [
            t for t in scope.touches_by_contact.get(contact_id, [])
            if t["occurred_at"] <= converted_at and t["kind"] not in ("impression", "conversion")
        ]  # fmt: skip
        count = len(before)
        if by in PERIODS:
            key = scope.label(converted_at, by)
        elif by == "source":
            key = scope.contacts[contact_id]["source"]
        else:
            key = next((b for b, low in TOUCH_BUCKETS if count >= low), "0")
        first = min((t["occurred_at"] for t in before), default=None)
        groups[key].append((count, days(converted_at, first) if first else None))
    total = sum(len(v) for v in groups.values())
    return _rows(groups, lambda items: {
        "customers": len(items), "share": ratio(len(items), total),
        "avg_touches": mean(c for c, _ in items), "avg_days": mean(d for _, d in items),
    })  # fmt: skip


def roi(scope: Scope, by: str, extra_costs: Iterable[dict[str, Any]] = ()) -> dict[Any, dict[str, Any]]:
    zero = {"cost": Decimal(0), "customers_first": 0, "revenue_first": Decimal(0), "customers_last": 0,
            "revenue_last": Decimal(0)}  # fmt: skip
    groups: dict[Any, dict[str, Any]] = defaultdict(lambda: dict(zero))
    for row in [*scope.ds["ad_spend"], *extra_costs]:
        cost = row.get("spend", row.get("cost"))
        if scope.in_dates(row["day"]) and row["currency"] == scope.currency:
            groups[row[by]]["cost"] += cost
    events = sorted(scope.ds["purchase"], key=lambda p: (p["contact_id"], p["purchased_at"]))
    seen: set[int] = set()
    for event in events:
        first_ever = event["contact_id"] not in seen
        seen.add(event["contact_id"])
        if not (scope.in_range(event["purchased_at"]) and event["currency"] == scope.currency):
            continue
        if not scope.in_segment(event["contact_id"]):
            continue
        credited = sorted(
            (t for t in scope.touches_by_contact.get(event["contact_id"], [])
             if t["kind"] in CREDITABLE and t["occurred_at"] <= event["purchased_at"]),
            key=lambda t: (t["occurred_at"], t["id"]),
        )  # fmt: skip
        for model, touch in (
            ("first", credited[0] if credited else None),
            ("last", credited[-1] if credited else None),
        ):
            group = groups[touch_key(touch, by) if touch else None]
            group[f"revenue_{model}"] += event["total"]
            group[f"customers_{model}"] += int(first_ever)

    def finish(g: dict[str, Any]) -> dict[str, Any]:
        out = dict(g)
        for model in ("first", "last"):
            out[f"roi_{model}"] = ratio(g[f"revenue_{model}"] - g["cost"], g["cost"])
            out[f"cpa_{model}"] = g["cost"] / g[f"customers_{model}"] if g[f"customers_{model}"] else None
        return out

    return _rows(groups, finish)


def _contact_key(scope: Scope, contact: dict[str, Any], by: str) -> Any:
    return scope.user_name(contact["owner_id"]) if by == "owner" else contact[by]


def conversion(scope: Scope, by: str, source: str | None = None) -> dict[Any, dict[str, Any]]:
    reached: dict[int, set[str]] = defaultdict(set)
    for change in scope.ds["lifecycle_change"]:
        reached[change["contact_id"]].add(change["to_stage"])
    groups: dict[Any, dict[str, Any]] = defaultdict(lambda: {"leads": 0, "qualified": 0, "customers": 0})
    for change in scope.ds["lifecycle_change"]:
        if change["from_stage"] is not None or change["to_stage"] != "lead":
            continue
        if not (scope.in_range(change["occurred_at"]) and scope.in_segment(change["contact_id"])):
            continue
        contact = scope.contacts[change["contact_id"]]
        if source and contact["source"] != source:
            continue
        key = scope.label(change["occurred_at"], by) if by in PERIODS else _contact_key(scope, contact, by)
        stages = reached[contact["id"]]
        group = groups[key]
        group["leads"] += 1
        group["qualified"] += int(bool(stages & {"prospect", "customer"}))
        group["customers"] += int("customer" in stages)
    return _rows(groups, lambda g: {**g, "qualification_rate": ratio(g["qualified"], g["leads"]),
                                    "conversion_rate": ratio(g["customers"], g["leads"])})  # fmt: skip


def cycle(scope: Scope, by: str, source: str | None = None) -> dict[Any, dict[str, Any]]:
    groups: dict[Any, list[float]] = defaultdict(list)
    for contact_id, converted_at in _first_customer(scope).items():
        contact = scope.contacts[contact_id]
        if source and contact["source"] != source:
            continue
        key = scope.label(converted_at, by) if by in PERIODS else _contact_key(scope, contact, by)
        groups[key].append(days(converted_at, contact["created_at"]))
    return _rows(groups, lambda d: {"customers": len(d), "avg_days": mean(d), "min_days": min(d), "max_days": max(d)})


def pipeline(scope: Scope, by: str) -> dict[Any, dict[str, Any]]:
    stages = {s["id"]: s for s in scope.ds.stages}
    names = {s["id"]: s["name"] for s in scope.ds.stages}
    groups: dict[Any, dict[str, Any]] = {}
    if by == "stage":
        for stage in stages.values():
            if stage["outcome"] == "open":
                groups[names[stage["id"]]] = {"opportunities": 0, "amount": Decimal(0), "weighted": Decimal(0),
                                              "ages": []}  # fmt: skip
    for opportunity in scope.ds["opportunity"]:
        if opportunity["status"] != "open" or opportunity["currency"] != scope.currency:
            continue
        if not (scope.in_range(opportunity["created_at"]) and scope.in_segment(opportunity["contact_id"])):
            continue
        stage = stages[opportunity["stage_id"]]
        key = names[stage["id"]] if by == "stage" else scope.user_name(opportunity["owner_id"])
        group = groups.setdefault(key, {"opportunities": 0, "amount": Decimal(0), "weighted": Decimal(0),
                                        "ages": []})  # fmt: skip
        group["opportunities"] += 1
        group["amount"] += opportunity["amount"]
        group["weighted"] += opportunity["amount"] * stage["probability"] / 100
        group["ages"].append(days(scope.now, opportunity["created_at"]))  # type: ignore[arg-type]
    return _rows(groups, lambda g: {"opportunities": g["opportunities"], "amount": g["amount"],
                                    "weighted_amount": g["weighted"], "avg_age_days": mean(g["ages"])})  # fmt: skip


def win_rate(scope: Scope, by: str) -> dict[Any, dict[str, Any]]:
    groups: dict[Any, dict[str, Any]] = defaultdict(lambda: {"won": 0, "lost": 0, "amounts": [], "days": []})
    for opportunity in scope.ds["opportunity"]:
        if opportunity["status"] not in ("won", "lost") or not scope.in_range(opportunity["closed_at"]):
            continue
        if not scope.in_segment(opportunity["contact_id"]):
            continue
        if by in PERIODS:
            key = scope.label(opportunity["closed_at"], by)
        elif by == "owner":
            key = scope.user_name(opportunity["owner_id"])
        elif by == "pipeline":
            key = "sales"
        else:
            key = scope.contacts[opportunity["contact_id"]]["source"]
        group = groups[key]
        if opportunity["status"] == "won":
            group["won"] += 1
            group["days"].append(days(opportunity["closed_at"], opportunity["created_at"]))
            if opportunity["currency"] == scope.currency:
                group["amounts"].append(opportunity["amount"])
        else:
            group["lost"] += 1
    return _rows(groups, lambda g: {
        "won": g["won"], "lost": g["lost"], "win_rate": ratio(g["won"], g["won"] + g["lost"]),
        "won_amount": sum(g["amounts"], Decimal(0)), "avg_deal": mean(g["amounts"]), "avg_days_to_win": mean(g["days"]),
    })  # fmt: skip


def reps(scope: Scope, by: str) -> dict[Any, dict[str, Any]]:
    groups: dict[Any, dict[str, Any]] = defaultdict(lambda: {
        "leads": 0, "won": 0, "won_amount": Decimal(0), "revenue": Decimal(0), "cycles": [], "activities": 0,
        "interactions": 0,
    })  # fmt: skip
    teams = {t["id"]: t["name"] for t in scope.ds["team"]}

    def key(user_id: int | None) -> Any:
        if by == "team":
            return teams.get(scope.users[user_id]["team_id"]) if user_id is not None else None
        return scope.user_name(user_id)

    for contact in scope.contacts.values():
        if scope.in_range(contact["created_at"]) and scope.in_segment(contact["id"]) and not contact["merged_into_id"]:
            groups[key(contact["owner_id"])]["leads"] += 1
    for opportunity in scope.ds["opportunity"]:
        won = opportunity["status"] == "won" and scope.in_range(opportunity["closed_at"])
        if won and scope.in_segment(opportunity["contact_id"]):
            group = groups[key(opportunity["owner_id"])]
            group["won"] += 1
            group["cycles"].append(days(opportunity["closed_at"], opportunity["created_at"]))
            if opportunity["currency"] == scope.currency:
                group["won_amount"] += opportunity["amount"]
    for purchase in scope.ds["purchase"]:
        sold = scope.in_range(purchase["purchased_at"]) and purchase["currency"] == scope.currency
        if sold and scope.in_segment(purchase["contact_id"]):
            groups[key(purchase["rep_id"])]["revenue"] += purchase["total"]
    for activity in scope.ds["activity"]:
        if activity["done_at"] and scope.in_range(activity["done_at"]) and scope.in_segment(activity["contact_id"]):
            groups[key(activity["owner_id"])]["activities"] += 1
    for interaction in scope.ds["interaction"]:
        if scope.in_range(interaction["occurred_at"]) and scope.in_segment(interaction["contact_id"]):
            groups[key(interaction["user_id"])]["interactions"] += 1
    return _rows(groups, lambda g: {**{k: v for k, v in g.items() if k != "cycles"},
                                    "avg_cycle_days": mean(g["cycles"])})  # fmt: skip


def forecast(scope: Scope, by: str) -> dict[Any, dict[str, Any]]:
    stages = {s["id"]: s for s in scope.ds.stages}
    groups: dict[Any, dict[str, Any]] = defaultdict(lambda: {"opportunities": 0, "amount": Decimal(0),
                                                             "weighted_amount": Decimal(0)})  # fmt: skip
    for opportunity in scope.ds["opportunity"]:
        if opportunity["status"] != "open" or opportunity["currency"] != scope.currency:
            continue
        if not (scope.in_dates(opportunity["expected_close_on"]) and scope.in_segment(opportunity["contact_id"])):
            continue
        group = groups[scope.label(opportunity["expected_close_on"], by)]
        group["opportunities"] += 1
        group["amount"] += opportunity["amount"]
        group["weighted_amount"] += opportunity["amount"] * stages[opportunity["stage_id"]]["probability"] / 100
    return dict(groups)

"""Synthetic CRM history for testing and benchmarking reports.

:func:`generate` writes a consistent, seeded history straight into a migrated
database (bulk inserts, explicit ids: a million touchpoints take seconds, not
the hours the services would): users and teams, organizations, contacts with
demographics and a custom field, touchpoints of every kind (some anonymous,
some tagged with UTM parameters only), lifecycle moves including customers who
went dormant and came back, purchases with lines at varying prices in two
currencies, opportunities in every stage, activities, interactions and daily
ad spend. With ``keep=True`` it also returns every row it wrote, so a test can
compute the same figures by another route.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
from sqlalchemy import func, select, text

from crmcore.models import (
    Activity,
    AdSpend,
    Contact,
    CustomField,
    Interaction,
    LifecycleChange,
    Opportunity,
    Organization,
    Pipeline,
    PipelineStage,
    Product,
    Purchase,
    PurchaseLine,
    Team,
    Touchpoint,
    User,
)
from crmcore.reports.rollup import rebuild

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from crmcore.crm import CRM

SOURCES = ("google", "facebook", "newsletter", "partner", "linkedin")
MEDIUMS = ("cpc", "email", "social", "referral")
CAMPAIGNS = ("spring", "summer", "launch", "brand", "retarget")
ADS = ("ad-a", "ad-b", "ad-c", "ad-d", "ad-e", "ad-f")
AFFILIATES = ("blog-one", "deals-site", "review-hub", "coupon-club")
COUNTRIES = ("US", "DE", "FR", "GB", "IR", "BR")
INDUSTRIES = ("software", "retail", "health", "finance")
SIZE_BANDS = ("1-10", "11-50", "51-200", "201+")
PLANS = ("basic", "pro", "enterprise")
#: Touchpoint kinds and their weights.
KINDS = (
    ("ad_click", 25), ("affiliate_click", 10), ("link_click", 8), ("email_open", 14), ("email_click", 9),
    ("visit", 6), ("call", 5), ("meeting", 2), ("form", 8), ("conversion", 8), ("impression", 5),
)  # fmt: skip
PRODUCTS = (("PRO", "Pro plan", "subscriptions", "99.00"), ("TEAM", "Team plan", "subscriptions", "249.00"),
            ("SETUP", "Onboarding", "services", "500.00"), ("BOOK", "Handbook", "goods", "19.90"))  # fmt: skip


@attrs.define
class Dataset:
    """What :func:`generate` wrote: rows by table name (empty lists unless ``keep``), and counts."""

    rows: dict[str, list[dict[str, Any]]] = attrs.field(factory=dict)
    counts: dict[str, int] = attrs.field(factory=dict)
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    end: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    stages: list[dict[str, Any]] = attrs.field(factory=list)

    def __getitem__(self, table: str) -> list[dict[str, Any]]:
        return self.rows.get(table, [])


class _Writer:
    """Buffers rows per table and inserts them in chunks (executemany)."""

    ORDER = ("team", "crm_user", "organization", "custom_field", "product", "contact", "touchpoint",
             "lifecycle_change", "purchase", "purchase_line", "opportunity", "activity", "interaction",
             "ad_spend")  # fmt: skip
    TABLES: ClassVar[dict[str, Any]] = {
        m.__tablename__: m.__table__
        for m in (Team, User, Organization, CustomField, Product, Contact, Touchpoint, LifecycleChange, Purchase,
                  PurchaseLine, Opportunity, Activity, Interaction, AdSpend)
    }  # fmt: skip

    def __init__(self, connection: Connection, dataset: Dataset, keep: bool, chunk: int, progress: Any) -> None:
        self.connection, self.dataset, self.keep, self.chunk, self.progress = connection, dataset, keep, chunk, progress
        self.buffers: dict[str, list[dict[str, Any]]] = {name: [] for name in self.ORDER}

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.buffers[table].append(row)
        if self.keep:
            self.dataset.rows.setdefault(table, []).append(row)
        self.dataset.counts[table] = self.dataset.counts.get(table, 0) + 1
        if len(self.buffers[table]) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        # Parents before children, so foreign keys hold at every statement.
        for name in self.ORDER:
            rows = self.buffers[name]
            if rows:
                self.connection.execute(self.TABLES[name].insert(), rows)
                self.buffers[name] = []
        if self.progress is not None:
            self.progress(self.dataset.counts)


def _next_id(connection: Connection, model: Any) -> int:
    return int(connection.scalar(select(func.coalesce(func.max(model.id), 0))) or 0) + 1


def generate(
    crm: CRM,
    *,
    contacts: int = 200,
    touches_per_contact: float = 5.0,
    seed: int = 1,
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC),
    days: int = 365,
    reps: int = 4,
    keep: bool = True,
    chunk: int = 20_000,
    progress: Callable[[dict[str, int]], None] | None = None,
) -> Dataset:
    """Write a seeded synthetic history of *contacts* contacts into *crm*'s (migrated) database.

    About ``contacts * touches_per_contact`` touchpoints are written, spread
    over *days* days from *start*; the same arguments always write the same rows.
    """
    rng = random.Random(seed)
    end = start + timedelta(days=days)
    dataset = Dataset(start=start, end=end)
    span = int((end - start).total_seconds())

    def moment(after: datetime, within_days: float) -> datetime:
        """A whole-second time after *after*, at most *within_days* later, before the end."""
        latest = min(after + timedelta(days=within_days), end - timedelta(seconds=1))
        if latest <= after:
            return after
        return after + timedelta(seconds=rng.randint(1, int((latest - after).total_seconds())))

    with crm.engine.begin() as connection:
        writer = _Writer(connection, dataset, keep, chunk, progress)
        ids = {name: _next_id(connection, model) for name, model in (
            ("team", Team), ("user", User), ("organization", Organization), ("product", Product),
            ("contact", Contact), ("touchpoint", Touchpoint), ("lifecycle", LifecycleChange),
            ("purchase", Purchase), ("line", PurchaseLine), ("opportunity", Opportunity),
            ("activity", Activity), ("interaction", Interaction), ("ad_spend", AdSpend),
            ("custom_field", CustomField),
        )}  # fmt: skip

        def new_id(name: str) -> int:
            ids[name] += 1
            return ids[name] - 1

        pipeline_id = connection.scalar(select(Pipeline.id).where(Pipeline.is_default.is_(True)))
        stages = [
            dict(row._mapping)
            for row in connection.execute(
                select(PipelineStage.id, PipelineStage.key, PipelineStage.name, PipelineStage.probability,
                       PipelineStage.outcome, PipelineStage.position).where(PipelineStage.pipeline_id == pipeline_id)
            )
        ]  # fmt: skip
        dataset.stages = stages
        team_ids = []
        for name in ("East", "West"):
            team_ids.append(new_id("team"))
            writer.add("team", {"id": team_ids[-1], "name": f"{name} {seed}"})
        user_ids = []
        for number in range(reps):
            user_ids.append(new_id("user"))
            writer.add("crm_user", {
                "id": user_ids[-1], "email": f"rep{number}.{seed}@example.com", "name": f"Rep {number} ({seed})",
                "role": "rep", "team_id": team_ids[number % 2], "active": True, "external_id": None,
                "created_at": start,
            })  # fmt: skip
        organization_ids = []
        for number in range(max(contacts // 5, 1)):
            organization_ids.append(new_id("organization"))
            writer.add("organization", {
                "id": organization_ids[-1], "name": f"Org {number}", "domain": None,
                "industry": rng.choice((*INDUSTRIES, None)), "size_band": rng.choice(SIZE_BANDS),
                "country": rng.choice(COUNTRIES), "custom": {}, "created_at": start,
            })  # fmt: skip
        if not connection.scalar(select(CustomField.id).where(CustomField.entity == "contact",
                                                              CustomField.name == "plan")):  # fmt: skip
            writer.add("custom_field", {
                "id": new_id("custom_field"), "entity": "contact", "name": "plan", "label": "Plan", "type": "choice",
                "choices": list(PLANS), "required": False, "owner": "admin", "description": None,
            })  # fmt: skip
        product_rows: list[tuple[int, Decimal]] = []
        for sku, name, category, list_price in PRODUCTS:
            existing = connection.scalar(select(Product.id).where(Product.sku == sku))
            product_id = existing or new_id("product")
            product_rows.append((product_id, Decimal(list_price)))
            if not existing:
                product = {"id": product_id, "sku": sku, "name": name, "category": category,
                           "unit_price": Decimal(list_price), "currency": "USD", "active": True}  # fmt: skip
                writer.add("product", product)
        kinds = [k for k, _ in KINDS]
        weights = [w for _, w in KINDS]
        for _number in range(contacts):
            contact_id = new_id("contact")
            created = start + timedelta(seconds=rng.randint(0, span - 86400 * 20))
            owner = rng.choice(user_ids) if rng.random() < 0.9 else None
            history: list[tuple[str | None, str, datetime]] = [(None, "lead", created)]
            if rng.random() < 0.45:
                history.append(("lead", "prospect", moment(created, 40)))
            if rng.random() < 0.45:
                history.append((history[-1][1], "customer", moment(history[-1][2], 90)))
                if rng.random() < 0.25:
                    history.append(("customer", "dormant", moment(history[-1][2], 60)))
                    if rng.random() < 0.5:
                        history.append(("dormant", "customer", moment(history[-1][2], 60)))
            contact = {
                "id": contact_id, "email": f"c{contact_id}@example.com",
                "email_normalized": f"c{contact_id}@example.com",
                "first_name": f"C{contact_id}", "organization_id": rng.choice(organization_ids) if rng.random() < 0.6
                else None, "owner_id": owner, "stage": history[-1][1], "stage_changed_at": history[-1][2],
                "source": rng.choice((*SOURCES, None)), "country": rng.choice((*COUNTRIES, None)),
                "region": None, "city": None, "language": rng.choice(("en", "de", "fa")), "timezone": None,
                "title": rng.choice(("CEO", "CTO", None)),
                "birth_date": date(rng.randint(1950, 2008), rng.randint(1, 12), rng.randint(1, 28))
                if rng.random() < 0.8 else None,
                "custom": {"plan": rng.choice(PLANS)} if rng.random() < 0.7 else {},
                "score": 0, "do_not_contact": False, "do_not_track": False, "created_at": created,
                "updated_at": created, "last_activity_at": created, "merged_into_id": None,
                "erased_at": end - timedelta(days=1) if rng.random() < 0.02 else None,
            }  # fmt: skip
            writer.add("contact", contact)
            for from_stage, to_stage, at in history:
                change = {"id": new_id("lifecycle"), "contact_id": contact_id, "from_stage": from_stage,
                          "to_stage": to_stage, "reason": "generated", "occurred_at": at,
                          "actor_id": owner}  # fmt: skip
                writer.add("lifecycle_change", change)
            touch_count = rng.randint(0, int(2 * touches_per_contact))
            for index in range(touch_count):
                at = created if index == 0 else moment(created, 150)
                writer.add("touchpoint", _touch(rng, new_id("touchpoint"), contact_id, at, kinds, weights, owner))
            if rng.random() < 0.1:  # an anonymous ad click, never credited to anybody
                at = start + timedelta(seconds=rng.randint(0, span - 1))
                row = _touch(rng, new_id("touchpoint"), None, at, ["ad_click"], [1], None)
                writer.add("touchpoint", row)
            for _from, to_stage, at in history:
                if to_stage != "customer":
                    continue
                for purchase_number in range(rng.choice((1, 1, 2, 3))):
                    when = at if purchase_number == 0 else moment(at, 60)
                    purchase_id = new_id("purchase")
                    code = "EUR" if rng.random() < 0.1 else "USD"
                    lines = []
                    for product_id, catalogue_price in rng.sample(product_rows, rng.choice((1, 1, 2))):
                        quantity = rng.randint(1, 3)
                        price = (catalogue_price * Decimal(rng.randint(80, 110)) / 100).quantize(Decimal("0.01"))
                        line = {"id": new_id("line"), "purchase_id": purchase_id, "product_id": product_id,
                                "quantity": quantity, "unit_price": price, "line_total": price * quantity}  # fmt: skip
                        lines.append(line)
                    writer.add("purchase", {
                        "id": purchase_id, "contact_id": contact_id, "purchased_at": when,
                        "rep_id": owner, "currency": code, "total": sum(line["line_total"] for line in lines),
                        "special_instructions": None, "opportunity_id": None, "external_ref": None,
                        "created_at": when,
                    })  # fmt: skip
                    for line in lines:
                        writer.add("purchase_line", line)
            if rng.random() < 0.35:
                stage = rng.choice(stages)
                opened = moment(created, 30)
                closed = moment(opened, 90) if stage["outcome"] != "open" else None
                writer.add("opportunity", {
                    "id": new_id("opportunity"), "name": f"Deal {contact_id}", "contact_id": contact_id,
                    "organization_id": contact["organization_id"], "pipeline_id": pipeline_id,
                    "stage_id": stage["id"], "amount": Decimal(rng.randint(5, 500) * 100),
                    "currency": "EUR" if rng.random() < 0.1 else "USD", "owner_id": owner,
                    "expected_close_on": (opened + timedelta(days=rng.randint(10, 200))).date()
                    if rng.random() < 0.9 else None,
                    "status": stage["outcome"], "lost_reason": "price" if stage["outcome"] == "lost" else None,
                    "created_at": opened, "stage_entered_at": opened, "closed_at": closed,
                })  # fmt: skip
            if owner is not None and rng.random() < 0.5:
                due = moment(created, 30)
                writer.add("activity", {
                    "id": new_id("activity"), "kind": "call", "subject": "Follow up", "notes": None,
                    "due_at": due, "remind_at": None, "done_at": moment(due, 10) if rng.random() < 0.7 else None,
                    "contact_id": contact_id, "opportunity_id": None, "owner_id": owner, "created_at": created,
                })  # fmt: skip
            if rng.random() < 0.4:
                writer.add("interaction", {
                    "id": new_id("interaction"), "contact_id": contact_id, "kind": "call", "direction": "out",
                    "subject": "Call", "body": None, "occurred_at": moment(created, 60), "duration_minutes": 10,
                    "outcome": None, "user_id": rng.choice(user_ids), "opportunity_id": None,
                })  # fmt: skip
        day = start.date()
        combos = [(s, c, a) for s in SOURCES[:2] for c in CAMPAIGNS[:3] for a in ADS[:2]]
        while day < end.date():
            for source, campaign, ad in combos:
                if rng.random() < 0.5:
                    writer.add("ad_spend", _spend(rng, new_id("ad_spend"), day, source, campaign, ad, None, start,
                                                  contacts))  # fmt: skip
            if rng.random() < 0.3:
                affiliate = rng.choice(AFFILIATES)
                writer.add("ad_spend", _spend(rng, new_id("ad_spend"), day, "partner", "affiliates", "", affiliate,
                                              start, contacts))  # fmt: skip
            day += timedelta(days=1)
        writer.flush()
        reset_sequences(connection)
        # written behind the services' back: the reports' daily rollups are recomputed
        rebuild(connection, crm.settings.timezone, crm.clock.now())
    return dataset


def _touch(
    rng: random.Random, touch_id: int, contact_id: int | None, at: datetime, kinds: list[str],
    weights: list[int], owner: int | None,
) -> dict[str, Any]:  # fmt: skip
    kind = rng.choices(kinds, weights)[0]
    source, campaign = rng.choice(SOURCES), rng.choice(CAMPAIGNS)
    plain = rng.random() < 0.6  # the rest carry UTM parameters only
    value = Decimal(rng.randint(10, 400)) if kind == "conversion" and rng.random() < 0.7 else None
    return {
        "id": touch_id, "contact_id": contact_id, "kind": kind, "occurred_at": at,
        "source": source if plain else None, "medium": rng.choice(MEDIUMS) if plain else None,
        "campaign": campaign if plain and rng.random() < 0.9 else None,
        "ad": rng.choice(ADS) if kind == "ad_click" and rng.random() < 0.95 else None,
        "affiliate": rng.choice(AFFILIATES) if kind == "affiliate_click" else None,
        "utm_source": None if plain else source, "utm_medium": None if plain else rng.choice(MEDIUMS),
        "utm_campaign": None if plain else campaign, "utm_term": None, "utm_content": None,
        "value": value, "currency": ("EUR" if rng.random() < 0.2 else "USD") if value is not None else None,
        "quantity": rng.randint(1, 50) if kind == "impression" else 1,
        "user_id": owner if kind in ("call", "visit", "meeting") else None, "details": {},
    }  # fmt: skip


def _spend(
    rng: random.Random, spend_id: int, day: date, source: str, campaign: str, ad: str, affiliate: str | None,
    imported_at: datetime, contacts: int,
) -> dict[str, Any]:  # fmt: skip
    impressions = rng.randint(0, max(4, contacts // 40))  # about 2% of impressions become clicks
    return {
        "id": spend_id, "day": day, "source": source, "campaign": campaign, "ad": ad, "affiliate": affiliate,
        "impressions": impressions, "platform_clicks": impressions // 50,
        "spend": Decimal(rng.randint(0, 40 * impressions + 100)) / 100,
        "currency": "EUR" if rng.random() < 0.05 else "USD",
        "imported_at": imported_at,
    }  # fmt: skip


def reset_sequences(connection: Connection) -> None:
    """PostgreSQL keeps sequences apart from explicit ids: move them past the rows written."""
    if connection.dialect.name != "postgresql":
        return
    for table in _Writer.TABLES:
        connection.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))"
        ))  # fmt: skip

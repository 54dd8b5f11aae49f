"""A year of a small B2B software company, simulated day by day through the CRM's services.

Every lead, touch, qualification, deal and purchase goes through the same
services (and so the same hooks) as in production; plugins add their part
through ``crm_demo_day``. Everything random comes from one seeded generator, so
two runs produce the same CRM.
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from crmcore.clock import FrozenClock
    from crmcore.crm import CRM

REPS = [("rita@example.com", "Rita Rep"), ("sam@example.com", "Sam Seller"), ("lena@example.com", "Lena Lead"),
        ("omar@example.com", "Omar Owner")]  # fmt: skip
PRODUCTS = [
    ("PRO", "Pro plan (year)", "1188.00", "subscriptions"),
    ("TEAM", "Team plan (year)", "2388.00", "subscriptions"),
    ("ONBOARD", "Onboarding", "450.00", "services"),
    ("TRAIN", "Training day", "900.00", "services"),
    ("SEATS", "Extra seats (10)", "290.00", "add-ons"),
]
#: Where leads come from: (touch kind, source, medium, weight).
CHANNELS = [("form", "google", "cpc", 30), ("ad_click", "google", "cpc", 20), ("ad_click", "facebook", "paid_social",
            12), ("affiliate_click", "partner-blog", "affiliate", 8), ("form", "newsletter", "email", 10),
            ("visit", "direct", "none", 12), ("form", "linkedin", "social", 8)]  # fmt: skip
CAMPAIGNS = ["spring-launch", "summer-webinar", "autumn-pricing", "year-end"]
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances", "Tim", "Radia",
         "Linus", "Sophie", "Niklaus", "Karen", "Dennis", "Hedy", "John", "Shafi", "Leslie"]  # fmt: skip
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Allen", "Lee",
        "Perlman", "Torvalds", "Wilson", "Wirth", "Jones", "Ritchie", "Lamarr", "McCarthy", "Goldwasser", "Lamport"]
COMPANIES = ["Analytical Engines", "Compiler Works", "Enigma Labs", "Semaphore GmbH", "Abstract Types", "TeX Press",
             "Apollo Systems", "Unix Tools", "Fortran Partners", "Web Weavers"]  # fmt: skip
TITLES = ["CTO", "Head of Sales", "Marketing Manager", "Developer", "Founder", "Operations Lead", None]
#: Each ad platform's cost per click and impressions per click, each as (lowest, highest). The platforms
#: count more clicks than the CRM, which sees only the visitors who left an address.
AD_PLATFORMS: dict[str, tuple[tuple[float, float], tuple[int, int]]] = {
    "google": ((1.2, 3.4), (15, 40)),
    "facebook": ((0.6, 1.8), (50, 120)),
}
#: Where a buyer arrives from at checkout when not through the channel that brought them.
RETURNS = [("direct", "none"), ("newsletter", "email")]


@attrs.define
class DemoDay:
    """One simulated business day, handed to every ``crm_demo_day`` implementation."""

    crm: CRM
    date: date
    rng: random.Random
    #: Contacts captured today (ids).
    leads: list[int]
    #: Contacts who bought for the first time today (ids).
    customers: list[int]
    #: Every contact so far (ids).
    contacts: list[int]
    counts: Counter[str]
    #: True on the first and on the last simulated business day (set up; add final figures).
    first: bool = False
    last: bool = False

    def count(self, what: str, n: int = 1) -> None:
        """Add *n* to the summary figure *what* (``"tickets opened"``)."""
        self.counts[what] += n

    def at(self, hour: int, minute: int = 0) -> datetime:
        """Move the CRM's clock forward to *hour*:*minute* of this day (never backwards); return the time."""
        clock: Any = self.crm.clock
        wanted = datetime.combine(self.date, time(hour, minute), tzinfo=UTC)
        if wanted > clock.now():
            clock.set(wanted)
        return clock.now()  # type: ignore[no-any-return]


@attrs.define
class _Deal:
    opportunity_id: int
    contact_id: int
    closes_on: date
    wins: bool
    stages: list[str]


class Simulation:
    """Drives the year: the core's daily activity, the plugins' through the hook, the worker weekly."""

    def __init__(self, crm: CRM, clock: FrozenClock, start: date, days: int, seed: int = 7) -> None:
        self.crm, self.clock, self.start, self.days = crm, clock, start, days
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.contacts: list[int] = []
        self.to_qualify: dict[date, list[int]] = {}
        self.deals: list[_Deal] = []
        self.customers: set[int] = set()
        #: Each lead's channel: (source, medium, campaign), the shop's conversion carries it back.
        self.origins: dict[int, tuple[str, str, str]] = {}
        #: Ad clicks that became leads, by (day, platform, campaign, ad): the platform's export counts more.
        self.ad_clicks: Counter[tuple[date, str, str, str]] = Counter()
        self.serial = 0
        self.business_days = 0

    def setup(self) -> None:
        """Reps, products and the affiliate partner."""
        for email, name in REPS:
            self.crm.users.add(email, name)
        for sku, name, price, category in PRODUCTS:
            self.crm.products.add(sku, name, unit_price=price, category=category)
        self.crm.affiliates.add("partner-blog", name="Partner Blog", commission_percent="10")

    def run(self, progress: Any = None) -> Counter[str]:
        """Simulate every day; return the summary counts."""
        self.setup()
        days = [self.start + timedelta(days=offset) for offset in range(self.days)]
        last_business_day = max((d for d in days if d.weekday() < 5), default=None)
        for offset, day in enumerate(days):
            self.clock.set(datetime.combine(day, time(9), tzinfo=UTC))
            if day.weekday() < 5:
                self.business_day(day, last=day == last_business_day)
            if day.weekday() == 6 or offset == self.days - 1:
                self.clock.set(datetime.combine(day, time(23, 59), tzinfo=UTC))
                self.counts["jobs run by the worker"] += self.crm.jobs.run_due()
            if offset == self.days - 1 or (day + timedelta(days=1)).month != day.month:
                self.import_ad_spend(day)
            if progress is not None:
                progress(offset + 1)
        return self.counts

    # -- one day ---------------------------------------------------------------------------

    def business_day(self, day: date, *, last: bool = False) -> None:
        """Leads in, touches, qualifications, deals moving and closing, purchases; then the plugins."""
        rng = self.rng
        season = 1.3 if day.month in (3, 4, 9, 10) else 0.8 if day.month in (7, 8, 12) else 1.0
        new_leads = self.capture_leads(day, max(0, round(rng.gauss(3 * season, 1.2))))
        self.touch_known(day)
        self.qualify_due(day)
        first_purchases = self.close_deals(day)
        first_purchases += self.repeat_purchases(day)
        self.crm.plugins.call("crm_demo_day", day=DemoDay(
            crm=self.crm, date=day, rng=rng, leads=new_leads, customers=first_purchases,
            contacts=self.contacts, counts=self.counts, first=not self.business_days, last=last))  # fmt: skip
        self.business_days += 1

    def capture_leads(self, day: date, n: int) -> list[int]:
        rng, captured = self.rng, []
        campaign = CAMPAIGNS[(day.month - 1) // 3]
        for _ in range(n):
            self.serial += 1
            first, last = rng.choice(FIRST), rng.choice(LAST)
            kind, source, medium, _ = rng.choices(CHANNELS, weights=[c[3] for c in CHANNELS])[0]
            touch: dict[str, Any] = {"kind": kind, "utm_source": source, "utm_medium": medium,
                                     "utm_campaign": campaign}  # fmt: skip
            if kind == "ad_click":
                touch["ad"] = f"{source}-{campaign}-{rng.randint(1, 3)}"
                self.ad_clicks[(day, source, campaign, touch["ad"])] += 1
            if kind == "affiliate_click":
                touch["affiliate"] = source
            contact = self.crm.leads.capture(
                email=f"{first}.{last}.{self.serial}@example.com".lower(), first_name=first, last_name=last,
                organization=rng.choice(COMPANIES), title=rng.choice(TITLES),
                country=rng.choice(["DE", "FR", "GB", "US", "NL", "SE"]), touch=touch,
            )  # fmt: skip
            captured.append(contact.id)
            self.contacts.append(contact.id)
            self.origins[contact.id] = (source, medium, campaign)
            self.counts["leads captured"] += 1
            if kind == "form" and rng.random() < 0.7:  # ticked the form's newsletter box
                self.crm.consent.grant(contact.id, "marketing", "email", source=f"form:{source}",
                                       text="Send me the monthly newsletter")  # fmt: skip
                self.counts["marketing consents given"] += 1
            if rng.random() < 0.35:
                self.to_qualify.setdefault(day + timedelta(days=rng.randint(2, 20)), []).append(contact.id)
        return captured

    def touch_known(self, day: date) -> None:
        rng = self.rng
        for _ in range(min(len(self.contacts), rng.randint(2, 6))):
            contact = rng.choice(self.contacts)
            kind = rng.choices(["visit", "email_open", "email_click", "form"], weights=[5, 6, 2, 1])[0]
            self.crm.touchpoints.record(contact, kind=kind, utm_source="newsletter" if "email" in kind else "direct")
            self.counts["touchpoints recorded"] += 1

    def qualify_due(self, day: date) -> None:
        rng = self.rng
        for contact in self.to_qualify.pop(day, []) + self.to_qualify.pop(day - timedelta(days=1), []):
            record = self.crm.contacts.get(contact)
            if record.stage != "lead":
                continue
            rep = record.owner_id  # the owning rep works the lead (record rules: reps act on their own contacts)
            self.crm.leads.qualify(contact, reason=rng.choice(["asked for a demo", "budget confirmed", "good fit"]),
                                   actor=rep)  # fmt: skip
            self.crm.interactions.log(contact, kind="call", subject="Discovery call",
                                      duration_minutes=rng.choice([15, 30, 45]), actor=rep)  # fmt: skip
            self.counts["leads qualified"] += 1
            if rng.random() < 0.7:
                amount = rng.choice(["1188.00", "2388.00", "3576.00", "4776.00"])
                deal = self.crm.sales.create_opportunity(contact, name="Annual plan", amount=amount, actor=rep)
                length = rng.randint(10, 70)
                stages = [s for s in ("needs_analysis", "proposal", "negotiation") if rng.random() < 0.8]
                self.deals.append(_Deal(deal.id, contact, day + timedelta(days=length), rng.random() < 0.45, stages))
                self.counts["opportunities opened"] += 1

    def close_deals(self, day: date) -> list[int]:
        first: list[int] = []
        still: list[_Deal] = []
        for deal in self.deals:
            if deal.stages and self.rng.random() < 0.15:
                self.crm.sales.move(deal.opportunity_id, deal.stages.pop(0))
            if deal.closes_on > day:
                still.append(deal)
                continue
            if deal.wins:
                self.crm.sales.win(deal.opportunity_id)
                self.counts["opportunities won"] += 1
                first += self.purchase(deal.contact_id, opportunity_id=deal.opportunity_id)
            else:
                self.crm.sales.lose(deal.opportunity_id, reason=self.rng.choice(
                    ["no budget", "chose a competitor", "no decision"]))  # fmt: skip
                self.counts["opportunities lost"] += 1
        self.deals = still
        return first

    def repeat_purchases(self, day: date) -> list[int]:
        if not self.customers or self.rng.random() > 0.4:
            return []
        return self.purchase(self.rng.choice(sorted(self.customers)), repeat=True)

    def purchase(self, contact: int, *, opportunity_id: int | None = None, repeat: bool = False) -> list[int]:
        rng = self.rng
        lines = [{"sku": rng.choice(["SEATS", "TRAIN"])}] if repeat else [
            {"sku": rng.choice(["PRO", "TEAM"])}] + ([{"sku": "ONBOARD"}] if rng.random() < 0.5 else [])  # fmt: skip
        purchase = self.crm.customers.record_purchase(contact, lines=lines, opportunity_id=opportunity_id)
        self.counts["purchases recorded"] += 1
        self.shop_conversion(contact, purchase.id, purchase.total, purchase.currency)
        if contact in self.customers:
            return []
        self.customers.add(contact)
        self.counts["customers won"] += 1
        return [contact]

    # -- the shop and the ad platforms -------------------------------------------------------

    def shop_conversion(self, contact: int, purchase_id: int, total: Any, currency: str) -> None:
        """The shop posts the order (``POST /conversions`` in production), tagged with the visit's channel.

        Most buyers come back through the channel that brought them; the others
        type the address or follow the newsletter. The conversion is credited to
        its last click (ads, affiliates) and earns the partner its commission.
        """
        source, medium, campaign = self.origins.get(contact, ("direct", "none", ""))
        if self.rng.random() < 0.35:
            source, medium = self.rng.choice(RETURNS)
        self.crm.conversions.record({"order_id": f"demo-{purchase_id}", "contact_id": contact, "value": str(total),
                                     "currency": currency, "utm_source": source, "utm_medium": medium,
                                     "utm_campaign": campaign or None})  # fmt: skip
        self.counts["conversions posted by the shop"] += 1

    def import_ad_spend(self, day: date) -> None:
        """The month's ad platform exports (impressions, clicks, cost per day and ad), as ``crm touch import``."""
        from crmcore.adimport import import_ad_spend

        month = [(key, n) for key, n in sorted(self.ad_clicks.items()) if key[0].month == day.month
                 and key[0].year == day.year]  # fmt: skip
        for platform, (cpc, per_click) in AD_PLATFORMS.items():
            buffer = io.StringIO()
            out = csv.writer(buffer)
            out.writerow(["Day", "Campaign", "Ad", "Impressions", "Clicks", "Cost", "Currency"])
            rows = 0
            for (on, source, campaign, ad), leads in month:
                if source != platform:
                    continue
                clicks = leads * self.rng.randint(1, 2)
                impressions = clicks * self.rng.randint(*per_click)
                cost = clicks * self.rng.uniform(*cpc)
                out.writerow([on.isoformat(), campaign, ad, impressions, clicks, f"{cost:.2f}",
                              self.crm.settings.currency])  # fmt: skip
                rows += 1
            if rows:
                import_ad_spend(self.crm, buffer.getvalue(), source=platform)
                self.counts["ad platform rows imported"] += rows

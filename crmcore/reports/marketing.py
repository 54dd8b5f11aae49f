"""The core's marketing reports: ads, affiliates, channels, demographics, products, touches, ROI."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import String, case, cast, func, literal, null, select, union_all
from sqlalchemy.orm import aliased

from crmcore.errors import PluginError
from crmcore.i18n import N_
from crmcore.models import (
    AdSpend,
    Contact,
    CustomField,
    LifecycleChange,
    Organization,
    Product,
    Purchase,
    PurchaseLine,
    Stage,
    TouchKind,
    Touchpoint,
    User,
)
from crmcore.models.rollup import AttributionDaily, ClickDaily, SaleDaily, TouchDaily
from crmcore.reports import rollup
from crmcore.reports.common import (
    CURRENCY,
    TOUCH_GROUPINGS,
    attributed_touch,
    currency,
    order_ranked,
    touch_key,
    union,
    with_periods,
    zero,
)
from crmcore.reports.model import Chart, Column, Param, Report, ReportQuery, count, money_sum
from crmcore.reports.sql import age_years, days_between, floor_div, ratio, safe_div, unindexed

AD_CLICK = TouchKind.AD_CLICK.value
AFFILIATE_CLICK = TouchKind.AFFILIATE_CLICK.value
CONVERSION = TouchKind.CONVERSION.value

# -- ads and affiliates ----------------------------------------------------------


def _last_click_conversions(query: ReportQuery, click_kind: str, by: str, cover: rollup.Coverage | None) -> Any:
    """``(key, conversions)``: conversions in the range, each credited to the contact's latest click of
    *click_kind* before it, keyed by that click's *by* (``touch_key``).

    With *cover*, the settled days come from ``report_click_daily`` and only
    the rest of the range from the raw rows.

    The conversions are taken in contact order, so the lookups of their clicks
    walk the index instead of jumping around it (PostgreSQL at 10M touchpoints:
    5 instead of 17 microseconds each). The click's ad or affiliate comes from
    the index itself; other keys from the click's row.
    """
    conversion = aliased(Touchpoint, name="conversion")
    ordered = (
        select(conversion.contact_id, conversion.occurred_at, conversion.quantity)
        .where(
            conversion.kind == CONVERSION,
            conversion.contact_id.is_not(None),
            query.in_range(conversion.occurred_at) if cover is None else cover.live(query, conversion.occurred_at),
            query.in_segment(conversion.contact_id),
        )
        .order_by(unindexed(conversion.contact_id))  # SQLite: sorted, not read in order from a whole index
        .subquery("conversions")
    )

    def credited(value: Any = None) -> Any:
        kinds = (click_kind,)
        return attributed_touch(ordered.c.contact_id, ordered.c.occurred_at, last=True, kinds=kinds, value=value)

    if by in ("ad", "affiliate"):
        # "=" and the click's value, "-" for a click without one; NULL: no click before, not credited
        # (grouped here, so SQLite runs the lookup once per conversion, not once per use of its value)
        found = credited(lambda c: func.coalesce(literal("=", String) + c[by], "-"))
        clicks = (
            select(found.label("found"), func.sum(ordered.c.quantity).label("quantity"))
            .group_by(found)
            .subquery("credited_conversions")
        )
        key = case((clicks.c.found == "-", null()), else_=func.substr(clicks.c.found, 2))
        live = select(key.label("key"), clicks.c.quantity.label("conversions")).where(clicks.c.found.is_not(None))
    else:
        clicks = select(credited().label("click_id"), ordered.c.quantity).subquery("credited_conversions")
        click = aliased(Touchpoint, name="click")
        live = select(touch_key(by, click).label("key"), clicks.c.quantity.label("conversions")).join_from(
            clicks, click, click.id == clicks.c.click_id
        )
    if cover is None:
        return live
    daily = ClickDaily
    rolled = select(daily.value.label("key"), daily.conversions.label("conversions")).where(
        daily.kind == click_kind, daily.dimension == by, cover.rolled(query, daily.day)
    )
    return union_all(rolled, live)


def _clicks(query: ReportQuery, click_kind: str, by: str, cover: rollup.Coverage | None) -> Any:
    """``(key, clicks)``: the clicks of *click_kind* in the range per *by*, the settled days from
    ``report_touch_daily`` when *cover* is given."""
    raw = select(touch_key(by, Touchpoint).label("key"), Touchpoint.quantity.label("clicks")).where(
        Touchpoint.kind == click_kind,
        query.in_range(Touchpoint.occurred_at) if cover is None else cover.live(query, Touchpoint.occurred_at),
        query.in_segment(Touchpoint.contact_id),
    )
    if cover is None:
        return raw
    daily = TouchDaily
    rolled = select(daily.value.label("key"), daily.quantity.label("clicks")).where(
        daily.dimension == by, daily.kind == click_kind, cover.rolled(query, daily.day)
    )
    return union_all(rolled, raw)


def build_ads(query: ReportQuery) -> Any:
    """Impressions and spend from ``ad_spend``; clicks and last-click conversions from touchpoints."""
    code = currency(query)
    spend_key = {"ad": func.nullif(AdSpend.ad, ""), "campaign": AdSpend.campaign, "source": AdSpend.source}[query.by]
    spend = select(
        spend_key.label("key"),
        AdSpend.impressions.label("impressions"),
        zero("clicks"),
        zero("conversions"),
        case((AdSpend.currency == code, AdSpend.spend), else_=0).label("spend"),
    ).where(query.in_dates(AdSpend.day))
    cover = rollup.coverage(query)
    clicked = _clicks(query, AD_CLICK, query.by, cover).subquery("clicked")
    clicks = select(clicked.c.key, zero("impressions"), clicked.c.clicks, zero("conversions"), zero("spend"))
    credited = _last_click_conversions(query, AD_CLICK, query.by, cover).subquery("credited")
    conversions = select(
        credited.c.key, zero("impressions"), zero("clicks"), credited.c.conversions, zero("spend")
    )  # fmt: skip
    facts = union(spend, clicks, conversions)
    totals = (
        select(
            facts.c.key,
            func.sum(facts.c.impressions).label("impressions"),
            func.sum(facts.c.clicks).label("clicks"),
            func.sum(facts.c.conversions).label("conversions"),
            func.sum(facts.c.spend).label("spend"),
        )
        .group_by(facts.c.key)
        .subquery("totals")
    )
    ranked = select(
        totals.c.key,
        totals.c.impressions,
        totals.c.clicks,
        ratio(totals.c.clicks, totals.c.impressions).label("ctr"),
        totals.c.conversions,
        ratio(totals.c.conversions, totals.c.clicks).label("conversion_rate"),
        totals.c.spend,
        safe_div(totals.c.spend, totals.c.clicks).label("cost_per_click"),
    ).subquery("ranked")
    rank = ranked.c[query.param("rank")]
    return select(ranked).order_by(*order_ranked(rank), ranked.c.clicks.desc(), ranked.c.key)


ADS = Report(
    name="marketing.ads",
    title=N_("Ads ranked by click-through and conversion rate"),
    description=N_(
        "Per ad (or campaign, or source): impressions and spend imported from the ad platforms "
        "(ad_spend), our own ad-click touchpoints, the click-through rate (clicks / impressions) and the "
        "conversion rate (conversions / clicks). A conversion touchpoint counts for the ad its contact "
        "last clicked before converting. Rates are empty when their denominator is 0."
    ),
    build=build_ads,
    columns=(
        count("impressions", N_("Impressions")),
        count("clicks", N_("Clicks")),
        Column(name="ctr", label=N_("CTR"), type="percent"),
        count("conversions", N_("Conversions")),
        Column(name="conversion_rate", label=N_("Conversion rate"), type="percent"),
        money_sum("spend", N_("Spend")),
        Column(name="cost_per_click", label=N_("Cost per click"), type="money"),
    ),
    groupings=(N_("ad"), N_("campaign"), N_("source")),
    default_by="ad",
    params=(
        Param(
            name=N_("rank"),
            help="Order rows by this column, highest first.",
            default="ctr",
            choices=("ctr", "conversion_rate", "clicks", "conversions"),
        ),
        CURRENCY,
    ),
    chart=Chart(kind="bar", y=("ctr", "conversion_rate")),
    dates="ad-click and conversion touchpoints by time; ad_spend rows by day",
    main=True,
)


def build_affiliates(query: ReportQuery) -> Any:
    """Affiliate clicks, distinct clicking contacts and last-affiliate-click conversions.

    Clicks and conversions of settled days come from the rollups; distinct
    contacts do not add up across days, so they are counted from the raw clicks.
    """
    cover = rollup.coverage(query)
    credited = _last_click_conversions(query, AFFILIATE_CLICK, "affiliate", cover).subquery("credited")
    if cover is None:  # one pass over the clicks for their sum and their distinct contacts
        clicks: Any = select(
            Touchpoint.affiliate.label("key"),
            Touchpoint.quantity.label("clicks"),
            Touchpoint.contact_id.label("contact_id"),
            zero("conversions"),
        ).where(
            Touchpoint.kind == AFFILIATE_CLICK,
            query.in_range(Touchpoint.occurred_at),
            query.in_segment(Touchpoint.contact_id),
        )
        conversions = select(credited.c.key, zero("clicks"), null().label("contact_id"), credited.c.conversions)
        facts = union(clicks, conversions)
        contacts: Any = func.count(facts.c.contact_id.distinct())
    else:
        clicked = _clicks(query, AFFILIATE_CLICK, "affiliate", cover).subquery("clicked")
        clicks = select(clicked.c.key, clicked.c.clicks, zero("contacts"), zero("conversions"))
        everyone = (
            select(
                Touchpoint.affiliate.label("key"),
                zero("clicks"),
                func.count(Touchpoint.contact_id.distinct()).label("contacts"),
                zero("conversions"),
            )
            .where(
                Touchpoint.kind == AFFILIATE_CLICK,
                query.in_range(Touchpoint.occurred_at),
                query.in_segment(Touchpoint.contact_id),
            )
            .group_by(Touchpoint.affiliate)
        )
        conversions = select(credited.c.key, zero("clicks"), zero("contacts"), credited.c.conversions)
        facts = union(clicks, everyone, conversions)
        contacts = func.sum(facts.c.contacts)
    totals = (
        select(
            facts.c.key,
            func.sum(facts.c.clicks).label("clicks"),
            contacts.label("contacts"),
            func.sum(facts.c.conversions).label("conversions"),
        )
        .group_by(facts.c.key)
        .subquery("totals")
    )
    return select(
        totals.c.key,
        totals.c.clicks,
        totals.c.contacts,
        totals.c.conversions,
        ratio(totals.c.conversions, totals.c.clicks).label("conversion_rate"),
    ).order_by(totals.c.clicks.desc(), totals.c.conversions.desc(), totals.c.key)


AFFILIATES = Report(
    name="marketing.affiliates",
    title=N_("Affiliates ranked by clicks and conversions"),
    description=N_(
        "Per affiliate site: affiliate-click touchpoints, the distinct contacts who clicked, and the "
        "conversions credited to the affiliate whose link the contact last clicked before converting."
    ),
    build=build_affiliates,
    columns=(
        count("clicks", N_("Clicks")),
        count("contacts", N_("Contacts")),
        count("conversions", N_("Conversions")),
        Column(name="conversion_rate", label=N_("Conversion rate"), type="percent"),
    ),
    groupings=(N_("affiliate"),),
    default_by="affiliate",
    chart=Chart(kind="bar", y=("clicks", "conversions")),
    dates="affiliate-click and conversion touchpoints by time",
)

# -- channels ----------------------------------------------------------------------


def build_channels(query: ReportQuery) -> Any:
    """Touchpoints per source, medium, campaign, UTM value, kind or period.

    The sums come from the daily rollup for settled days (the raw rows for the
    rest); distinct contacts do not add up across days, so they are always
    counted from the raw rows.
    """
    code = currency(query)
    kind = query.param("kind")
    key = query.period(Touchpoint.occurred_at) if query.is_period else touch_key(query.by, Touchpoint)
    is_conversion = Touchpoint.kind == CONVERSION

    def touches(*columns: Any, when: Any) -> Any:
        """The touchpoints *when* holds for (and of the kind and segment asked for)."""
        chosen = select(key.label("key"), *columns).where(when, query.in_segment(Touchpoint.contact_id))
        return chosen.where(Touchpoint.kind == kind) if kind else chosen

    measures = (
        Touchpoint.quantity.label("quantity"),
        Touchpoint.contact_id.label("contact_id"),
        case((is_conversion, Touchpoint.quantity), else_=0).label("conversions"),
        case((is_conversion & (Touchpoint.currency == code), Touchpoint.value), else_=0).label("value"),
    )
    cover = rollup.coverage(query)
    if cover is None:
        sub = touches(*measures, when=query.in_range(Touchpoint.occurred_at)).subquery("facts")
        statement = select(
            sub.c.key,
            func.sum(sub.c.quantity).label("touchpoints"),
            func.count(sub.c.contact_id.distinct()).label("contacts"),
            func.sum(sub.c.conversions).label("conversions"),
            func.sum(sub.c.value).label("conversion_value"),
        ).group_by(sub.c.key)
        order = func.sum(sub.c.quantity)
    else:
        daily = TouchDaily
        daily_conversion = daily.kind == CONVERSION
        rolled = select(
            (query.date_period(daily.day) if query.is_period else daily.value).label("key"),
            daily.quantity.label("quantity"),
            zero("contacts"),
            case((daily_conversion, daily.quantity), else_=0).label("conversions"),
            case((daily_conversion & (daily.currency == code), daily.amount), else_=0).label("value"),
        ).where(daily.dimension == ("all" if query.is_period else query.by), cover.rolled(query, daily.day))
        if kind:
            rolled = rolled.where(daily.kind == kind)
        live = touches(*measures, when=cover.live(query, Touchpoint.occurred_at)).subquery("live")
        recent = select(
            live.c.key, live.c.quantity, zero("contacts"), live.c.conversions, live.c.value
        )  # fmt: skip
        at = unindexed(Touchpoint.occurred_at) if _source_order_pays(query, kind) else Touchpoint.occurred_at
        everyone = touches(Touchpoint.contact_id.label("contact_id"), when=query.in_range(at)).subquery("everyone")
        contacts = select(
            everyone.c.key, zero("quantity"), func.count(everyone.c.contact_id.distinct()).label("contacts"),
            zero("conversions"), zero("value"),
        ).group_by(everyone.c.key)  # fmt: skip
        sub = union(rolled, recent, contacts)
        statement = select(
            sub.c.key,
            func.sum(sub.c.quantity).label("touchpoints"),
            func.sum(sub.c.contacts).label("contacts"),
            func.sum(sub.c.conversions).label("conversions"),
            func.sum(sub.c.value).label("conversion_value"),
        ).group_by(sub.c.key)
        order = func.sum(sub.c.quantity)
    if query.is_period:
        return statement.order_by(sub.c.key)
    return statement.order_by(order.desc(), sub.c.key)


def _source_order_pays(query: ReportQuery, kind: str | None) -> bool:
    """SQLite: whether the distinct contacts of a range per source should be read in source order.

    Migration core_0011's index hands the touchpoints over in ``(source, contact)``
    order, so the count streams; a range would steer SQLite to the index in time
    order instead (it keeps no histograms and takes every range for a narrow one),
    whose rows it must then sort and deduplicate, about 6 times the cost per row.
    So a range that spans at least a sixth of the touchpoints' time is read in
    source order. PostgreSQL plans by its own statistics.
    """
    if query.dialect != "sqlite" or query.by != "source" or kind or (query.start is None and query.end is None):
        return False
    first = query.session.scalar(select(func.min(Touchpoint.occurred_at)))  # an index seek each
    last = query.session.scalar(select(func.max(Touchpoint.occurred_at)))
    if first is None or last is None:
        return False
    start, end = max(query.start or first, first), min(query.end or last, last)
    return bool((end - start) * 6 >= last - first)


CHANNELS = Report(
    name="marketing.channels",
    title=N_("Sources, mediums and UTM campaigns"),
    description=N_(
        "Touchpoints (each counted with its quantity), distinct contacts, conversions and conversion "
        "value per source, medium, campaign, ad, affiliate, kind, UTM parameter or period. source, "
        "medium and campaign fall back to utm_source, utm_medium and utm_campaign when empty."
    ),
    build=build_channels,
    columns=(
        count("touchpoints", N_("Touchpoints")),
        count("contacts", N_("Contacts")),
        count("conversions", N_("Conversions")),
        money_sum("conversion_value", N_("Conversion value")),
    ),
    groupings=with_periods(*TOUCH_GROUPINGS),
    default_by="source",
    params=(
        Param(name=N_("kind"), help="Only touchpoints of this kind.", choices=tuple(k.value for k in TouchKind)),
        CURRENCY,
    ),
    chart=Chart(kind="bar", y=("touchpoints", "conversions")),
    dates="touchpoints by time",
    main=True,
)

# -- demographics ----------------------------------------------------------------

CONTACT_FIELDS = (N_("country"), N_("region"), N_("city"), N_("language"), N_("timezone"), N_("stage"),
                  N_("source"), N_("title"))  # fmt: skip
ORGANIZATION_FIELDS = (N_("industry"), N_("size_band"), N_("country"))
#: Age bands: (label, lowest age). Labels sort in age order.
AGE_BANDS = (("0-17", 0), ("18-24", 18), ("25-34", 25), ("35-44", 35), ("45-54", 45), ("55-64", 55), ("65+", 65))
STAGES = tuple(s.value for s in Stage)


def demographic_groupings(query: ReportQuery) -> list[str]:
    """Contact fields, ``owner``, ``age_band``, organization fields and every declared custom field."""
    names = [*CONTACT_FIELDS, N_("owner"), N_("age_band"), *(f"organization.{f}" for f in ORGANIZATION_FIELDS)]
    for entity, name in query.session.execute(
        select(CustomField.entity, CustomField.name).order_by(CustomField.entity, CustomField.name)
    ):
        names.append(f"custom.{name}" if entity == "contact" else f"organization.custom.{name}")
    return names


def _demographic_key(query: ReportQuery) -> tuple[Any, bool]:
    """The key expression, and whether it needs the organization joined."""
    by = query.by
    if by == "age_band":
        age = age_years(Contact.birth_date, literal(query.as_of))
        bands = [(age >= low, label) for label, low in reversed(AGE_BANDS)]
        return case((Contact.birth_date.is_(None), null()), *bands, else_=null()), False
    if by == "owner":
        return User.name, False
    if by.startswith("organization.custom."):
        return Organization.custom[by.removeprefix("organization.custom.")].as_string(), True
    if by.startswith("organization."):
        return getattr(Organization, by.removeprefix("organization.")), True
    if by.startswith("custom."):
        return Contact.custom[by.removeprefix("custom.")].as_string(), False
    return getattr(Contact, by), False


def build_demographics(query: ReportQuery) -> Any:
    """Contacts (of a stage) per attribute, with buyers and revenue in the range."""
    code = currency(query)
    spent = (
        select(Purchase.contact_id.label("contact_id"), func.sum(Purchase.total).label("revenue"))
        .where(query.in_range(Purchase.purchased_at), Purchase.currency == code)
        .group_by(Purchase.contact_id)
        .subquery("spent")
    )
    key, needs_organization = _demographic_key(query)
    facts = (
        select(key.label("key"), spent.c.contact_id.label("buyer"), spent.c.revenue.label("revenue"))
        .select_from(Contact)
        .outerjoin(spent, spent.c.contact_id == Contact.id)
        .where(Contact.erased_at.is_(None), Contact.merged_into_id.is_(None), query.in_segment(Contact.id))
    )
    if needs_organization:
        facts = facts.outerjoin(Organization, Organization.id == Contact.organization_id)
    if query.by == "owner":
        facts = facts.outerjoin(User, User.id == Contact.owner_id)
    if query.param("stage") != "all":
        # SQLite takes a stage for a fifth of the contacts and would read them through the stage index, a
        # row lookup each; customers are often half of them, which a scan of the table reads at half the cost
        facts = facts.where(unindexed(Contact.stage) == query.param("stage"))
    sub = facts.subquery("facts")
    contacts = func.count()
    statement = select(
        sub.c.key,
        contacts.label("contacts"),
        ratio(contacts, func.sum(contacts).over()).label("share"),
        func.count(sub.c.buyer).label("buyers"),
        func.coalesce(func.sum(sub.c.revenue), 0).label("revenue"),
        safe_div(func.sum(sub.c.revenue), func.count(sub.c.buyer)).label("revenue_per_buyer"),
    ).group_by(sub.c.key)
    if query.by == "age_band":
        return statement.order_by(sub.c.key.is_(None), sub.c.key)
    return statement.order_by(contacts.desc(), sub.c.key)


DEMOGRAPHICS = Report(
    name="marketing.demographics",
    title=N_("Customer demographics"),
    description=N_(
        "Contacts at a stage (customers by default; stage=all for everyone), erased and merged ones "
        "left out, per contact field, owner, age band (age at the end of the range, or today), "
        "organization field or custom field (custom.NAME, organization.custom.NAME), with their share, "
        "how many bought in the range and what they spent."
    ),
    build=build_demographics,
    columns=(
        count("contacts", N_("Contacts")),
        Column(name="share", label=N_("Share"), type="percent"),
        count("buyers", N_("Buyers in range")),
        money_sum("revenue", N_("Revenue")),
        Column(name="revenue_per_buyer", label=N_("Revenue per buyer"), type="money"),
    ),
    groupings=demographic_groupings,
    terms=("stage",),
    default_by="country",
    params=(
        Param(
            name=N_("stage"),
            help="Which contacts: a lifecycle stage, or all.",
            default="customer",
            choices=(*STAGES, "all"),
        ),
        CURRENCY,
    ),
    chart=Chart(kind="bar", y=("contacts",)),
    dates="purchases (buyers, revenue) by time; the population is every matching contact",
)

# -- products ----------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"{text!r} is not a positive whole number")
    return value


def build_products(query: ReportQuery) -> Any:
    """Units, orders, revenue and realised prices per product, category, price band or period."""
    code = currency(query)
    band = query.param("band")
    lower = floor_div(PurchaseLine.unit_price, literal(band)) * literal(band)
    keys: dict[str, Any] = {
        "product": Product.name + " (" + Product.sku + ")",
        "sku": Product.sku,
        "category": Product.category,
        "price_band": cast(lower, String) + "-" + cast(lower + literal(band), String),
    }
    key = query.period(Purchase.purchased_at) if query.is_period else keys[query.by]
    cover = rollup.coverage(query) if query.is_period or query.by in ("product", "sku") else None
    if cover is not None:
        return _products_rolled(query, cover, code)
    sub = (
        select(
            key.label("key"),
            lower.label("band_start"),
            PurchaseLine.product_id,
            PurchaseLine.purchase_id,
            PurchaseLine.quantity,
            PurchaseLine.unit_price,
            PurchaseLine.line_total,
        )
        .select_from(PurchaseLine)
        .join(Purchase, Purchase.id == PurchaseLine.purchase_id)
        .join(Product, Product.id == PurchaseLine.product_id)
        .where(query.in_range(Purchase.purchased_at), Purchase.currency == code, query.in_segment(Purchase.contact_id))
        .subquery("facts")
    )
    revenue = func.sum(sub.c.line_total)
    units = func.sum(sub.c.quantity)
    by_product = query.by in ("product", "sku")  # group by the id, not by the label built from it
    statement = select(
        func.min(sub.c.key).label("key") if by_product else sub.c.key,
        units.label("units"),
        func.count(sub.c.purchase_id.distinct()).label("orders"),
        revenue.label("revenue"),
        func.min(sub.c.unit_price).label("min_price"),
        safe_div(revenue, units).label("avg_price"),
        func.max(sub.c.unit_price).label("max_price"),
    ).group_by(sub.c.product_id if by_product else sub.c.key)
    if query.by == "price_band":
        return statement.order_by(func.min(sub.c.band_start))
    if query.is_period:
        return statement.order_by(sub.c.key)
    return statement.order_by(revenue.desc(), func.min(sub.c.key) if by_product else sub.c.key)


def _products_rolled(query: ReportQuery, cover: rollup.Coverage, code: str) -> Any:
    """``marketing.products`` per product, SKU or period: settled days from ``report_sale_daily``, the rest raw.

    Each purchase falls on one day, so distinct orders add up across days.
    """
    by_product = not query.is_period
    daily = SaleDaily
    rolled = select(
        (daily.product_id if by_product else query.date_period(daily.day)).label("key"),
        daily.units.label("units"),
        daily.orders.label("orders"),
        daily.revenue.label("revenue"),
        daily.min_price.label("min_price"),
        daily.max_price.label("max_price"),
    ).where(daily.dimension == ("product" if by_product else "all"), daily.currency == code,
            cover.rolled(query, daily.day))  # fmt: skip
    live_key = PurchaseLine.product_id if by_product else query.period(Purchase.purchased_at)
    live = (
        select(
            live_key.label("key"),
            *rollup.sale_figures(),
        )
        .select_from(PurchaseLine)
        .join(Purchase, Purchase.id == PurchaseLine.purchase_id)
        .where(cover.live(query, Purchase.purchased_at), Purchase.currency == code)
        .group_by(live_key)
    )
    sub = union(rolled, live)
    revenue = func.sum(sub.c.revenue)
    units = func.sum(sub.c.units)
    measures = (
        units.label("units"),
        func.sum(sub.c.orders).label("orders"),
        revenue.label("revenue"),
        func.min(sub.c.min_price).label("min_price"),
        safe_div(revenue, units).label("avg_price"),
        func.max(sub.c.max_price).label("max_price"),
    )
    if not by_product:
        return select(sub.c.key, *measures).group_by(sub.c.key).order_by(sub.c.key)
    totals = select(sub.c.key.label("product_id"), *measures).group_by(sub.c.key).subquery("totals")
    label = Product.name + " (" + Product.sku + ")" if query.by == "product" else Product.sku
    return (
        select(label.label("key"), *(c for c in totals.c if c.name != "product_id"))
        .join_from(totals, Product, Product.id == totals.c.product_id)
        .order_by(totals.c.revenue.desc(), label)
    )


PRODUCTS = Report(
    name="marketing.products",
    title=N_("Products sold and at which prices"),
    description=N_(
        "Purchase lines in the range (one currency): units, distinct orders, revenue, and the lowest, "
        "average (revenue / units) and highest unit price actually paid; per product, SKU, category, "
        "price band (unit price in bands of `band`) or period."
    ),
    build=build_products,
    columns=(
        count("units", N_("Units")),
        count("orders", N_("Orders")),
        money_sum("revenue", N_("Revenue")),
        Column(name="min_price", label=N_("Min price"), type="money"),
        Column(name="avg_price", label=N_("Avg price"), type="money"),
        Column(name="max_price", label=N_("Max price"), type="money"),
    ),
    groupings=with_periods(N_("product"), N_("sku"), N_("category"), N_("price_band")),
    default_by="product",
    params=(
        Param(name=N_("band"), help="Width of a price band (whole currency units).", default=50, convert=_positive_int),
        CURRENCY,
    ),
    chart=Chart(kind="bar", y=("revenue",)),
    dates="purchases by time",
    main=True,
)

# -- touches before conversion -----------------------------------------------------

#: Buckets of touch counts: (label, lowest count). Sorted by their lowest count.
TOUCH_BUCKETS = (("0", 0), ("1", 1), ("2", 2), ("3", 3), ("4", 4), ("5", 5), ("6-10", 6), ("11-20", 11), ("21+", 21))


def build_touches(query: ReportQuery) -> Any:
    """Customers won in the range: touches before their conversion and days from first touch."""
    converted_at = func.min(LifecycleChange.occurred_at)
    converted = (
        select(LifecycleChange.contact_id.label("contact_id"), converted_at.label("converted_at"))
        .where(LifecycleChange.to_stage == Stage.CUSTOMER.value, query.in_segment(LifecycleChange.contact_id))
        .group_by(LifecycleChange.contact_id)
        .having(query.in_range(converted_at))
        .subquery("converted")
    )
    touch = aliased(Touchpoint, name="touch")
    per_contact = (
        select(
            converted.c.contact_id,
            converted.c.converted_at,
            func.count(touch.id).label("touches"),
            func.min(touch.occurred_at).label("first_touch_at"),
        )
        .select_from(converted)
        .outerjoin(
            touch,
            # SQLite: the bound keeps (contact_id, occurred_at) from being chosen, so it reads the contact's
            # touches from (contact_id, kind, occurred_at) alone, with no lookup of each row for its kind
            (touch.contact_id == converted.c.contact_id)
            & (unindexed(touch.occurred_at) <= converted.c.converted_at)
            & (touch.kind.not_in((TouchKind.IMPRESSION.value, CONVERSION))),
        )
        .group_by(converted.c.contact_id, converted.c.converted_at)
        .subquery("per_contact")
    )
    buckets = case(
        *[(per_contact.c.touches >= low, label) for label, low in reversed(TOUCH_BUCKETS)], else_=literal("0")
    )
    if query.is_period:
        key: Any = query.period(per_contact.c.converted_at)
    elif query.by == "source":
        key = select(Contact.source).where(Contact.id == per_contact.c.contact_id).scalar_subquery()
    else:
        key = buckets
    sub = select(
        key.label("key"),
        per_contact.c.touches,
        days_between(per_contact.c.converted_at, per_contact.c.first_touch_at).label("days"),
    ).subquery("facts")
    customers = func.count()
    statement = select(
        sub.c.key,
        customers.label("customers"),
        ratio(customers, func.sum(customers).over()).label("share"),
        func.avg(sub.c.touches).label("avg_touches"),
        func.avg(sub.c.days).label("avg_days"),
    ).group_by(sub.c.key)
    if query.by == "touches":
        return statement.order_by(func.min(sub.c.touches))
    if query.is_period:
        return statement.order_by(sub.c.key)
    return statement.order_by(customers.desc(), sub.c.key)


TOUCHES = Report(
    name="marketing.touches",
    title=N_("Touchpoints before conversion"),
    description=N_(
        "Contacts who first became customers in the range: how many touchpoints they had up to that "
        "moment (impressions and conversion events not counted), and the days from their first "
        "touchpoint to becoming a customer; per bucket of touch counts, contact source or period."
    ),
    build=build_touches,
    columns=(
        count("customers", N_("Customers")),
        Column(name="share", label=N_("Share"), type="percent"),
        Column(name="avg_touches", label=N_("Avg touches"), type="number"),
        Column(name="avg_days", label=N_("Avg days from first touch"), type="days"),
    ),
    groupings=with_periods(N_("touches"), N_("source")),
    default_by="touches",
    chart=Chart(kind="bar", y=("customers",)),
    dates="the time each contact first became a customer",
)

# -- ROI and cost per acquisition ----------------------------------------------------


COST_COLUMNS = ("day", "source", "campaign", "affiliate", "cost", "currency")
REVENUE_COLUMNS = ("contact_id", "occurred_at", "amount", "currency")


def _check_columns(statement: Any, required: tuple[str, ...], plugin: str | None, hook: str) -> None:
    """A plugin's statement must carry the labelled columns the hook's contract names."""
    columns = getattr(statement, "selected_columns", None)
    missing = [name for name in required if columns is None or name not in columns]
    if missing:
        raise PluginError(f"returned a query without the column(s) {', '.join(missing)}", plugin=plugin, hook=hook)


def build_roi(query: ReportQuery) -> Any:
    """Costs per key against revenue credited by first-touch and by last-touch attribution."""
    code = currency(query)
    by = query.by
    contributions = []
    for plugin, selects in query.crm.plugins.collect_by_plugin(
        "crm_campaign_cost_contributions", query=query, ctx=query.ctx
    ):
        for statement in selects:
            _check_columns(statement, COST_COLUMNS, plugin, "crm_campaign_cost_contributions")
            contributions.append(statement.with_only_columns(*(statement.selected_columns[c] for c in COST_COLUMNS)))
    costs = union_all(*contributions).subquery("costs") if contributions else None
    parts = []
    if costs is not None:
        parts.append(
            select(
                costs.c[by].label("key"),
                costs.c.cost.label("cost"),
                zero("customers_first"),
                zero("revenue_first"),
                zero("customers_last"),
                zero("revenue_last"),
            ).where(query.in_dates(costs.c.day), costs.c.currency == code)
        )
    chosen = query.ctx.call("crm_revenue_query", query=query)
    _check_columns(chosen, REVENUE_COLUMNS, None, "crm_revenue_query")
    # the rollup holds the core's revenue (purchases); another plugin's choice is read raw
    cover = rollup.coverage(query) if chosen is purchase_revenue() else None
    if cover is not None:
        daily = AttributionDaily

        def credited(model: str, column: Any) -> Any:
            return case((daily.model == model, column), else_=0)

        parts.append(
            select(
                daily.value.label("key"),
                zero("cost"),
                credited("first", daily.acquisitions).label("customers_first"),
                credited("first", daily.revenue).label("revenue_first"),
                credited("last", daily.acquisitions).label("customers_last"),
                credited("last", daily.revenue).label("revenue_last"),
            ).where(daily.dimension == by, daily.currency == code, cover.rolled(query, daily.day))
        )
        numbered = rollup.revenue_events(lambda at: cover.live(query, at))
        window = cover.live(query, numbered.c.occurred_at)
    else:
        revenue = chosen.subquery("revenue_all")
        numbered = select(
            revenue.c.contact_id,
            revenue.c.occurred_at,
            revenue.c.amount,
            revenue.c.currency,
            func.row_number().over(partition_by=revenue.c.contact_id, order_by=revenue.c.occurred_at).label("nth"),
        ).subquery("numbered")
        window = query.in_range(numbered.c.occurred_at)
    events = (
        select(
            numbered.c.amount,
            case((numbered.c.nth == 1, 1), else_=0).label("is_first"),
            attributed_touch(numbered.c.contact_id, numbered.c.occurred_at, last=False).label("first_id"),
            attributed_touch(numbered.c.contact_id, numbered.c.occurred_at, last=True).label("last_id"),
        )
        .where(window, numbered.c.currency == code, query.in_segment(numbered.c.contact_id))
        .cte("events")  # read twice (first and last touch): computed once
    )
    for model in ("first", "last"):
        touch = aliased(Touchpoint, name=f"{model}_touch")
        measures = {f"customers_{m}": events.c.is_first if m == model else literal(0) for m in ("first", "last")} | {
            f"revenue_{m}": events.c.amount if m == model else literal(0) for m in ("first", "last")
        }
        parts.append(
            select(
                touch_key(by, touch).label("key"),
                zero("cost"),
                measures["customers_first"].label("customers_first"),
                measures["revenue_first"].label("revenue_first"),
                measures["customers_last"].label("customers_last"),
                measures["revenue_last"].label("revenue_last"),
            )
            .select_from(events)
            .outerjoin(touch, touch.id == events.c[f"{model}_id"])
        )
    facts = union(*parts)
    totals = (
        select(
            facts.c.key,
            func.sum(facts.c.cost).label("cost"),
            *[
                func.sum(facts.c[name]).label(name)
                for name in ("customers_first", "revenue_first", "customers_last", "revenue_last")
            ],
        )
        .group_by(facts.c.key)
        .subquery("totals")
    )
    t = totals.c
    return select(
        t.key,
        t.cost,
        t.customers_first,
        t.revenue_first,
        ratio(t.revenue_first - t.cost, t.cost).label("roi_first"),
        safe_div(t.cost, t.customers_first).label("cpa_first"),
        t.customers_last,
        t.revenue_last,
        ratio(t.revenue_last - t.cost, t.cost).label("roi_last"),
        safe_div(t.cost, t.customers_last).label("cpa_last"),
    ).order_by(t.cost.desc(), (t.revenue_first + t.revenue_last).desc(), t.key)


ROI = Report(
    name="marketing.roi",
    title=N_("ROI and cost per acquisition, first-touch and last-touch"),
    description=N_(
        "Per campaign, source or affiliate: cost (imported ad spend plus what plugins contribute through "
        "crm_campaign_cost_contributions, by day) against revenue (purchases, or what "
        "crm_revenue_query chooses, such as invoices) credited to the contact's first creditable "
        "touchpoint (first-touch) and to the last one before each sale (last-touch). Creditable "
        "touchpoints: ad, affiliate, link and email clicks and forms. A sale is an acquisition when it "
        "is the contact's first ever. ROI = (revenue - cost) / cost; CPA = cost / acquisitions; both "
        "empty when their denominator is 0. Sales with no creditable touchpoint show under (none). "
        "With --segment only the segment's sales count; costs stay campaign-wide."
    ),
    build=build_roi,
    columns=(
        money_sum("cost", N_("Cost")),
        count("customers_first", N_("Acquisitions (first touch)")),
        money_sum("revenue_first", N_("Revenue (first touch)")),
        Column(name="roi_first", label=N_("ROI (first touch)"), type="percent"),
        Column(name="cpa_first", label=N_("CPA (first touch)"), type="money"),
        count("customers_last", N_("Acquisitions (last touch)")),
        money_sum("revenue_last", N_("Revenue (last touch)")),
        Column(name="roi_last", label=N_("ROI (last touch)"), type="percent"),
        Column(name="cpa_last", label=N_("CPA (last touch)"), type="money"),
    ),
    groupings=(N_("campaign"), N_("source"), N_("affiliate")),
    default_by="campaign",
    params=(CURRENCY,),
    chart=Chart(kind="bar", y=("cost", "revenue_first", "revenue_last")),
    dates="costs by day; revenue events by time",
    main=True,
)


def ad_spend_costs() -> Any:
    """The core's cost contribution: imported ad spend, one row per day, source, campaign and ad."""
    return select(
        AdSpend.day.label("day"),
        AdSpend.source.label("source"),
        AdSpend.campaign.label("campaign"),
        AdSpend.affiliate.label("affiliate"),
        AdSpend.spend.label("cost"),
        AdSpend.currency.label("currency"),
    )


@functools.cache
def purchase_revenue() -> Any:
    """The core's revenue events: recorded purchases (one statement, so the rollup can recognise it)."""
    return select(
        Purchase.contact_id.label("contact_id"),
        Purchase.purchased_at.label("occurred_at"),
        Purchase.total.label("amount"),
        Purchase.currency.label("currency"),
    )


MARKETING_REPORTS = [ADS, AFFILIATES, CHANNELS, DEMOGRAPHICS, PRODUCTS, TOUCHES, ROI]

__all__ = ["MARKETING_REPORTS", "ad_spend_costs", "purchase_revenue"]

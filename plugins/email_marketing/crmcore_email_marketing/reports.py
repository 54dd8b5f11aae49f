"""Email marketing reports (per campaign, link and A/B variant) and the campaign cost contribution.

Every figure is aggregated by the database. "Sent" counts messages the mail
server accepted (bounced ones included); "delivered" is sent minus bounced;
rates are over delivered messages. Revenue is what :class:`Conversion` rows
credit to a campaign (the purchase's buyer last opened or clicked it within
the attribution window), counted in the report's currency; ROI is
``(revenue - cost) / cost``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, String, case, cast, func, literal, null, select

from crmcore.i18n import N_
from crmcore.reports import Chart, Column, Param, Report, count, money_sum, ratio
from crmcore.reports.common import CURRENCY, currency, with_periods
from crmcore_email_marketing.models import Campaign, Conversion, LinkClick, Recipient, RecipientStatus

if TYPE_CHECKING:
    from crmcore.reports import ReportQuery

_SENT = (RecipientStatus.SENT, RecipientStatus.BOUNCED)


def _one(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _recipient_figures(query: ReportQuery, *extra_keys: Any) -> Any:
    """Per campaign (and *extra_keys*): sent, bounced, unique opens and clicks, unsubscribes, complaints."""
    keys = (Recipient.campaign_id, *extra_keys)
    return (
        select(
            *keys,
            _one(Recipient.status.in_(_SENT)).label("sent"),
            _one(Recipient.status == RecipientStatus.BOUNCED).label("bounced"),
            func.count(Recipient.opened_at).label("unique_opens"),
            func.count(Recipient.clicked_at).label("unique_clicks"),
            func.count(Recipient.unsubscribed_at).label("unsubscribes"),
        )
        .where(query.in_segment(Recipient.contact_id))
        .group_by(*keys)
        .subquery("recipients")
    )


def _conversion_figures(query: ReportQuery, *extra_keys: Any) -> Any:
    keys = (Conversion.campaign_id, *extra_keys)
    statement = select(*keys, func.count().label("conversions"), func.sum(Conversion.amount).label("revenue"))
    if extra_keys:
        statement = statement.join(Recipient, Recipient.id == Conversion.recipient_id)
    return (
        statement.where(Conversion.currency == currency(query), query.in_segment(Conversion.contact_id))
        .group_by(*keys)
        .subquery("conversions")
    )


def build_campaigns(query: ReportQuery) -> Select[Any]:
    """Per campaign (or the period it started in): delivery, engagement, conversions, revenue, cost, ROI."""
    code = currency(query)
    figures = _recipient_figures(query)
    won = _conversion_figures(query)
    key = query.period(Campaign.started_at) if query.is_period else Campaign.name
    sent = func.coalesce(func.sum(figures.c.sent), 0)
    bounced = func.coalesce(func.sum(figures.c.bounced), 0)
    delivered = sent - bounced
    unique_clicks = func.coalesce(func.sum(figures.c.unique_clicks), 0)
    unique_opens = func.coalesce(func.sum(figures.c.unique_opens), 0)
    revenue = func.coalesce(func.sum(won.c.revenue), 0)
    cost = func.coalesce(func.sum(case((Campaign.currency == code, Campaign.actual_cost), else_=0)), 0)
    return (
        select(
            key.label("key"),
            func.count(Campaign.id).label("campaigns"),
            sent.label("sent"),
            delivered.label("delivered"),
            bounced.label("bounced"),
            unique_opens.label("unique_opens"),
            unique_clicks.label("unique_clicks"),
            ratio(unique_opens, delivered).label("open_rate"),
            ratio(unique_clicks, delivered).label("click_through_rate"),
            func.coalesce(func.sum(figures.c.unsubscribes), 0).label("unsubscribes"),
            func.coalesce(func.sum(won.c.conversions), 0).label("conversions"),
            revenue.label("revenue"),
            cost.label("cost"),
            ratio(revenue - cost, cost).label("roi"),
        )
        .select_from(Campaign)
        .outerjoin(figures, figures.c.campaign_id == Campaign.id)
        .outerjoin(won, won.c.campaign_id == Campaign.id)
        .where(Campaign.started_at.is_not(None), query.in_range(Campaign.started_at))
        .group_by(key)
        .order_by(key)
    )


def build_links(query: ReportQuery) -> Select[Any]:
    """Clicks and clicking recipients per link (or per campaign)."""
    key = LinkClick.url if query.by == "link" else Campaign.name
    statement = (
        select(
            key.label("key"),
            func.count(LinkClick.id).label("clicks"),
            func.count(func.distinct(LinkClick.recipient_id)).label("unique_clicks"),
        )
        .join(Campaign, Campaign.id == LinkClick.campaign_id)
        .join(Recipient, Recipient.id == LinkClick.recipient_id)
        .where(query.in_range(LinkClick.occurred_at), query.in_segment(Recipient.contact_id))
    )
    if query.param("campaign"):
        statement = statement.where(Campaign.name == query.param("campaign"))
    return statement.group_by(key).order_by(func.count(LinkClick.id).desc(), key)


def build_variants(query: ReportQuery) -> Select[Any]:
    """Each A/B variant of the campaigns started in the range: sent, open and click rates, conversions."""
    figures = _recipient_figures(query, Recipient.variant)
    won = _conversion_figures(query, Recipient.variant)
    key = cast(Campaign.name, String(200)) + literal(" / ") + figures.c.variant
    delivered = figures.c.sent - figures.c.bounced
    statement = (
        select(
            key.label("key"),
            figures.c.sent.label("sent"),
            figures.c.unique_opens.label("unique_opens"),
            ratio(figures.c.unique_opens, delivered).label("open_rate"),
            figures.c.unique_clicks.label("unique_clicks"),
            ratio(figures.c.unique_clicks, delivered).label("click_through_rate"),
            func.coalesce(won.c.conversions, 0).label("conversions"),
            func.coalesce(won.c.revenue, 0).label("revenue"),
            case((Campaign.ab_winner == figures.c.variant, "yes"), else_=null()).label("winner"),
        )
        .select_from(figures)
        .join(Campaign, Campaign.id == figures.c.campaign_id)
        .outerjoin(won, (won.c.campaign_id == figures.c.campaign_id) & (won.c.variant == figures.c.variant))
        .where(figures.c.variant.is_not(None), Campaign.ab_metric.is_not(None), query.in_range(Campaign.started_at))
    )
    if query.param("campaign"):
        statement = statement.where(Campaign.name == query.param("campaign"))
    return statement.order_by(key)


CAMPAIGN = Param(name=N_("campaign"), help="Only this campaign (its name).")

CAMPAIGNS = Report(
    name="email_marketing.campaigns",
    title=N_("Email campaigns"),
    description=N_(
        "Per campaign (or the period it started in): messages sent, delivered (sent minus bounced) and bounced, "
        "unique opens and clicks, open and click-through rates over delivered, unsubscribes, conversions "
        "credited by last touch within the attribution window, revenue, cost and ROI ((revenue - cost) / cost)."
    ),
    build=build_campaigns,
    columns=(
        count("campaigns", N_("Campaigns")),
        count("sent", N_("Sent")),
        count("delivered", N_("Delivered")),
        count("bounced", N_("Bounced")),
        count("unique_opens", N_("Unique opens")),
        count("unique_clicks", N_("Unique clicks")),
        Column(name="open_rate", label=N_("Open rate"), type="percent"),
        Column(name="click_through_rate", label=N_("CTR"), type="percent"),
        count("unsubscribes", N_("Unsubscribes")),
        count("conversions", N_("Conversions")),
        money_sum("revenue", N_("Revenue")),
        money_sum("cost", N_("Cost")),
        Column(name="roi", label=N_("ROI"), type="percent"),
    ),
    groupings=with_periods(N_("campaign")),
    default_by="campaign",
    params=(CURRENCY,),
    chart=Chart(kind="bar", y=("revenue", "cost")),
    dates="campaigns by the time they started sending",
    main=True,
)

LINKS = Report(
    name="email_marketing.links",
    title=N_("Email links"),
    description=N_("Clicks on the links of campaign messages, and how many recipients clicked, per link or campaign."),
    build=build_links,
    columns=(count("clicks", N_("Clicks")), count("unique_clicks", N_("Unique clicks"))),
    groupings=(N_("link"), N_("campaign")),
    default_by="link",
    params=(CAMPAIGN,),
    chart=Chart(kind="bar", y=("clicks",)),
    dates="clicks by the time they happened",
)

VARIANTS = Report(
    name="email_marketing.variants",
    title=N_("A/B subject variants"),
    description=N_(
        "Each subject line of the A/B tests of campaigns started in the range: sent, unique opens and clicks "
        "with their rates over delivered messages, conversions and revenue, and which variant won."
    ),
    build=build_variants,
    columns=(
        count("sent", N_("Sent")),
        count("unique_opens", N_("Unique opens")),
        Column(name="open_rate", label=N_("Open rate"), type="percent"),
        count("unique_clicks", N_("Unique clicks")),
        Column(name="click_through_rate", label=N_("CTR"), type="percent"),
        count("conversions", N_("Conversions")),
        money_sum("revenue", N_("Revenue")),
        Column(name="winner", label=N_("Winner")),
    ),
    groupings=(N_("variant"),),
    default_by="variant",
    params=(CAMPAIGN, CURRENCY),
    chart=Chart(kind="bar", y=("open_rate", "click_through_rate")),
    dates="campaigns by the time they started sending",
)


def registered_reports() -> list[Report]:
    """The plugin's reports."""
    return [CAMPAIGNS, LINKS, VARIANTS]


def cost_contribution(query: ReportQuery) -> Select[Any]:
    """Each started campaign's actual cost on its start day (in the CRM's zone), as source ``email``."""
    return select(
        Campaign.started_on.label("day"),
        literal("email", String(255)).label("source"),
        cast(Campaign.name, String(255)).label("campaign"),
        null().label("affiliate"),
        Campaign.actual_cost.label("cost"),
        Campaign.currency.label("currency"),
    ).where(Campaign.started_on.is_not(None))

"""Email marketing's part of ``crm demo``: a monthly newsletter to consenting prospects and customers.

The campaign goes through the outbox like any other (the demo's worker writes
the messages to its mail folder); recipients then open and click at realistic
rates, which records ``email_open`` and ``email_click`` touchpoints and credits
later purchases to the campaign.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from crmcore_email_marketing.models import Campaign, Recipient, RecipientStatus

if TYPE_CHECKING:
    from crmcore.demo.simulation import DemoDay

AUDIENCE = "newsletter-audience"
TEMPLATE = "newsletter"


def setup(day: DemoDay) -> None:
    """The newsletter's template and its audience (prospects and customers; consent is checked at sending)."""
    from crmcore_email_marketing import email_marketing

    email_marketing(day.crm).templates.create(
        TEMPLATE,
        subject="{{ contact.first_name or 'Hello' }}, what's new this month",
        html="<p>Hi {{ contact.first_name or 'there' }},</p><p>three new features shipped this month. "
             "<a href=\"https://example.com/whats-new\">See what's new</a>.</p>",
    )  # fmt: skip
    day.crm.segments.create(AUDIENCE, {"any": [{"field": "stage", "value": "prospect"},
                                               {"field": "stage", "value": "customer"}]},
                            description="Who gets the monthly newsletter")  # fmt: skip


def simulate(day: DemoDay) -> None:
    """Send on the first business day of a month; recipients open and click over the following days."""
    from crmcore_email_marketing import email_marketing

    marketing = email_marketing(day.crm)
    if day.first:
        setup(day)
    first_business_day = day.date.day <= 3 and all(
        (day.date - timedelta(days=n)).weekday() >= 5 for n in range(1, day.date.day))  # fmt: skip
    if first_business_day and not day.first:
        campaign = marketing.campaigns.create(f"Newsletter {day.date:%B %Y}", template=TEMPLATE, segment=AUDIENCE,
                                              goal="activation", budget="250.00", cost="180.00")  # fmt: skip
        marketing.campaigns.send(campaign.id)
        day.count("campaigns sent")
    engage(day)
    if day.last:
        with day.crm.transaction(readonly=True) as ctx:
            sent, opened, clicked = ctx.session.execute(select(
                func.count(Recipient.id).filter(Recipient.status == RecipientStatus.SENT),
                func.count(Recipient.opened_at), func.count(Recipient.clicked_at))).one()  # fmt: skip
        day.count("campaign emails delivered", sent)
        day.count("campaign emails opened", opened)
        day.count("campaign emails clicked", clicked)


def engage(day: DemoDay) -> None:
    """Some recipients of the latest campaign open it today; some of those click its link."""
    from crmcore_email_marketing import email_marketing

    tracking = email_marketing(day.crm).tracking
    with day.crm.transaction(readonly=True) as ctx:
        latest = ctx.session.execute(select(Campaign.id, Campaign.name).order_by(Campaign.id.desc()).limit(1)).first()
        if latest is None:
            return
        waiting = list(ctx.session.scalars(select(Recipient.contact_id).where(
            Recipient.campaign_id == latest.id, Recipient.status == RecipientStatus.SENT,
            Recipient.opened_at.is_(None)).order_by(Recipient.id).limit(40)))  # fmt: skip
    for contact_id in waiting:
        if contact_id is None or day.rng.random() > 0.12:
            continue
        day.at(day.rng.randint(9, 20), day.rng.randint(0, 59))
        tracking.record_open(latest.id, contact_id)
        if day.rng.random() < 0.25:
            day.crm.touchpoints.record(contact_id, kind="email_click", campaign=latest.name, source="email",
                                       url="https://example.com/whats-new",
                                       details={"email_campaign_id": latest.id})  # fmt: skip

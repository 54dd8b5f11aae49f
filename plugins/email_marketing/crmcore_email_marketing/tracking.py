"""Opens, clicks and conversions of campaign messages.

Opens come from the signed pixel (``/email/o/<token>.gif``); clicks from the
signed redirect of ``crmcore.links`` (the capture issue's), which records a
click touchpoint carrying ``details["email_campaign_id"]`` — this plugin
listens to ``crm_touchpoint_recorded`` and counts it for the recipient and
link. A purchase is credited to the campaign whose message the buyer last
opened or clicked within ``attribution_days``.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crmcore.models import Contact, TouchKind, Touchpoint
from crmcore.services.leads import clean_touch, record_touch_in
from crmcore_email_marketing.campaigns import setting
from crmcore_email_marketing.models import Campaign, Conversion, LinkClick, Recipient

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM
    from crmcore.events import PurchaseRecorded, TouchpointRecorded

#: Touchpoint kinds a click through a campaign link may be recorded as.
CLICK_KINDS = (TouchKind.EMAIL_CLICK, TouchKind.LINK_CLICK, "click")


class TrackingService:
    """``email_marketing(crm).tracking``: record opens (clicks come through the redirect)."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def record_open(self, campaign_id: int, contact_id: int) -> bool:
        """Count an open of the campaign's message; the first one is an ``email_open`` touchpoint.

        Returns False when there is no such recipient. Contacts who asked not to
        be tracked are not counted.
        """
        with self.crm.transaction() as ctx:
            recipient = ctx.first(Recipient, Recipient.campaign_id == campaign_id, Recipient.contact_id == contact_id)
            contact = ctx.session.get(Contact, contact_id)
            if recipient is None or contact is None or contact.do_not_track:
                return False
            first = recipient.opened_at is None
            recipient.opens += 1
            recipient.opened_at = recipient.opened_at or ctx.now
            recipient.last_engaged_at = ctx.now
            if first:
                campaign = ctx.session.get(Campaign, campaign_id)
                assert campaign is not None
                values = clean_touch(ctx, {"kind": TouchKind.EMAIL_OPEN, "source": "email", "medium": "email",
                                           "campaign": campaign.name,
                                           "details": {"email_campaign_id": campaign_id}})  # fmt: skip
                record_touch_in(ctx, contact, values)
            return True


def on_touchpoint(ctx: HookContext, event: TouchpointRecorded) -> None:
    """Count a click touchpoint made by a campaign link for its recipient and link."""
    if event.kind not in CLICK_KINDS or event.contact_id is None:
        return
    touch = ctx.session.get(Touchpoint, event.touchpoint_id)
    details: dict[str, Any] = (touch.details or {}) if touch is not None else {}
    campaign_id = details.get("email_campaign_id")
    if touch is None or not isinstance(campaign_id, int):
        return
    recipient = ctx.first(Recipient, Recipient.campaign_id == campaign_id, Recipient.contact_id == event.contact_id)
    if recipient is None:
        return
    recipient.clicks += 1
    recipient.clicked_at = recipient.clicked_at or event.occurred_at
    recipient.last_engaged_at = event.occurred_at
    url = str(touch.url or details.get("url") or "")[:2000]
    digest = hashlib.sha1(url.encode()).hexdigest()
    ctx.session.add(LinkClick(campaign_id=campaign_id, recipient_id=recipient.id, url=url, url_hash=digest,
                              occurred_at=event.occurred_at))  # fmt: skip


def attribute_purchase(ctx: HookContext, event: PurchaseRecorded) -> None:
    """Credit a purchase to the campaign the buyer last opened or clicked within the window."""
    window = timedelta(days=int(setting(ctx.crm, "attribution_days")))
    recipient = ctx.session.scalars(
        select(Recipient)
        .where(Recipient.contact_id == event.contact_id,
               Recipient.last_engaged_at >= event.occurred_at - window,
               Recipient.last_engaged_at <= event.occurred_at)
        .order_by(Recipient.last_engaged_at.desc(), Recipient.id.desc())
        .limit(1)
    ).first()  # fmt: skip
    if recipient is None:
        return
    ctx.session.add(Conversion(
        campaign_id=recipient.campaign_id, recipient_id=recipient.id, contact_id=event.contact_id,
        purchase_id=event.purchase_id, amount=event.total, currency=event.currency, occurred_at=event.occurred_at,
    ))  # fmt: skip

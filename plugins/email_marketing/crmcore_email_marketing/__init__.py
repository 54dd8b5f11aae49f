"""crmcore-email-marketing: campaigns with budgets and ROI, tracked sending over SMTP, automation sequences.

Reach the services of a CRM with :func:`email_marketing`::

    from crmcore_email_marketing import email_marketing

    em = email_marketing(crm)
    em.templates.create("spring", subject="Hello {{ contact.first_name or 'there' }}", html="<p>Spring sale!</p>")
    em.campaigns.create("Spring sale", template="spring", segment="newsletter", budget="500.00")
    em.campaigns.send("Spring sale")
"""

from __future__ import annotations

import weakref
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmcore.crm import CRM
    from crmcore_email_marketing.automation import SequenceService
    from crmcore_email_marketing.campaigns import CampaignService, TemplateService
    from crmcore_email_marketing.suppression import SuppressionService
    from crmcore_email_marketing.tracking import TrackingService

__all__ = ["EmailMarketing", "email_marketing"]


class EmailMarketing:
    """The email marketing services of one CRM."""

    def __init__(self, crm: CRM) -> None:
        from crmcore.errors import ConfigError

        if not crm.plugins.is_enabled("email_marketing"):
            raise ConfigError("the email_marketing plugin is not enabled on this CRM")
        self.crm = crm

    @cached_property
    def templates(self) -> TemplateService:
        """Email templates: create, update, preview."""
        from crmcore_email_marketing.campaigns import TemplateService

        return TemplateService(self.crm)

    @cached_property
    def campaigns(self) -> CampaignService:
        """Campaigns: create, schedule, send, pause, resume, cancel, stats."""
        from crmcore_email_marketing.campaigns import CampaignService

        return CampaignService(self.crm)

    @cached_property
    def suppressions(self) -> SuppressionService:
        """The suppression list, unsubscribes, bounce and complaint reports."""
        from crmcore_email_marketing.suppression import SuppressionService

        return SuppressionService(self.crm)

    @cached_property
    def tracking(self) -> TrackingService:
        """Opens, clicks and conversions."""
        from crmcore_email_marketing.tracking import TrackingService

        return TrackingService(self.crm)

    @cached_property
    def sequences(self) -> SequenceService:
        """Automation: drip sequences started by lifecycle hooks."""
        from crmcore_email_marketing.automation import SequenceService

        return SequenceService(self.crm)


_services: weakref.WeakKeyDictionary[CRM, EmailMarketing] = weakref.WeakKeyDictionary()


def email_marketing(crm: CRM) -> EmailMarketing:
    """The email marketing services of *crm* (made once per CRM)."""
    found = _services.get(crm)
    if found is None:
        found = _services[crm] = EmailMarketing(crm)
    return found

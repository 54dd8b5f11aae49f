"""Hooks the email marketing plugin publishes for other plugins.

Implement them with ``@hookimpl(optionalhook=True)`` so your plugin still loads
when email marketing is not enabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore_email_marketing.events import CampaignMessageSent


@hookspec
def crm_campaign_message_sent(event: CampaignMessageSent, ctx: HookContext) -> None:
    """The mail server accepted a campaign message for one recipient.

    Fires in the delivery job, in the small transaction that records the
    message as sent (it commits before the next message goes out). May write
    rows that belong to that record; side effects belong in the outbox. A hook
    that raises stops the batch, and the recipient is recorded as ``unknown``
    (never sent twice). All implementations run; return values are ignored.

    :param event: Campaign, recipient, contact, address, Message-ID and A/B variant.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """

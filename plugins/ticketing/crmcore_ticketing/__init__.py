"""crmcore-ticketing: multichannel tickets, SLA timers on business hours, knowledge base, contracts.

Reach the services of a CRM with :func:`ticketing`::

    from crmcore_ticketing import ticketing

    support = ticketing(crm)
    ticket = support.tickets.open(subject="Printer on fire", body="Help!", requester="ada@example.com")
    support.tickets.reply(ticket.number, "Water, not foam.", actor="agent@example.com")
"""

from __future__ import annotations

import weakref
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmcore.crm import CRM
    from crmcore_ticketing.kb import KnowledgeBase
    from crmcore_ticketing.mailin import MailIn
    from crmcore_ticketing.policies import ContractService, SlaService
    from crmcore_ticketing.tickets import TicketService

__all__ = ["Ticketing", "ticketing"]


class Ticketing:
    """The ticketing services of one CRM."""

    def __init__(self, crm: CRM) -> None:
        from crmcore.errors import ConfigError

        if not crm.plugins.is_enabled("ticketing"):
            raise ConfigError("the ticketing plugin is not enabled on this CRM")
        self.crm = crm

    @cached_property
    def tickets(self) -> TicketService:
        """Open, reply, note, assign, change status; list and read tickets."""
        from crmcore_ticketing.tickets import TicketService

        return TicketService(self.crm)

    @cached_property
    def sla(self) -> SlaService:
        """Business calendars and SLA policies."""
        from crmcore_ticketing.policies import SlaService

        return SlaService(self.crm)

    @cached_property
    def contracts(self) -> ContractService:
        """Service contracts."""
        from crmcore_ticketing.policies import ContractService

        return ContractService(self.crm)

    @cached_property
    def kb(self) -> KnowledgeBase:
        """The knowledge base: articles, FAQ, search, votes."""
        from crmcore_ticketing.kb import KnowledgeBase

        return KnowledgeBase(self.crm)

    @cached_property
    def mail(self) -> MailIn:
        """Incoming email: ingest one message, poll a Maildir."""
        from crmcore_ticketing.mailin import MailIn

        return MailIn(self.crm)


_services: weakref.WeakKeyDictionary[CRM, Ticketing] = weakref.WeakKeyDictionary()


def ticketing(crm: CRM) -> Ticketing:
    """The ticketing services of *crm* (made once per CRM)."""
    found = _services.get(crm)
    if found is None:
        found = _services[crm] = Ticketing(crm)
    return found

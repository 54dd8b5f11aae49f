"""The frozen events the ticketing hooks receive: ids and plain values, never live rows."""

from __future__ import annotations

from datetime import datetime

import attrs


@attrs.frozen(kw_only=True)
class TicketCreated:
    """A ticket was opened (by email, the web form, an agent, the API)."""

    ticket_id: int
    number: str
    contact_id: int
    channel: str
    priority: str
    category: str
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class TicketMessageAdded:
    """A message joined a ticket's thread: a customer message, agent reply or internal note."""

    ticket_id: int
    contact_id: int
    message_id: int
    author_type: str
    public: bool
    channel: str
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class TicketStatusChanged:
    """A ticket moved from one status to another."""

    ticket_id: int
    contact_id: int
    from_status: str
    to_status: str
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class TicketAssigned:
    """A ticket's assignee or group changed."""

    ticket_id: int
    contact_id: int
    assignee_id: int | None
    previous_assignee_id: int | None
    team_id: int | None
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class TicketSlaEvent:
    """An SLA point of one metric was reached: a warning, the breach, an escalation, fulfilment."""

    ticket_id: int
    contact_id: int
    metric: str
    metric_id: int
    policy_id: int | None
    due_at: datetime | None
    #: For warnings, the configured point (``"30m"`` before, or ``"80%"``); else None.
    point: str | None = None
    #: For fulfilment: True when the target was met after its deadline.
    late: bool = False
    #: For escalations: the level of the ladder (1, 2, …) and its action.
    level: int | None = None
    action: str | None = None
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class TicketSolved:
    """A ticket was solved (what satisfaction surveys wait for)."""

    ticket_id: int
    contact_id: int
    assignee_id: int | None
    channel: str
    category: str | None
    product: str | None
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class TicketReopened:
    """A solved or closed ticket was opened again (a customer's reply, an agent)."""

    ticket_id: int
    contact_id: int
    from_status: str
    occurred_at: datetime

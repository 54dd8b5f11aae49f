"""Hooks the ticketing plugin publishes for other plugins (surveys, chat bridges, alerting).

Implement them with ``@hookimpl(optionalhook=True)`` so your plugin still loads
when ticketing is not enabled. Every notification runs inside the transaction
that made the change: a hook that raises rolls the change back, and writes a
hook makes commit with it. Side effects belong in the outbox (``ctx.enqueue``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore_ticketing.events import (
        TicketAssigned,
        TicketCreated,
        TicketMessageAdded,
        TicketReopened,
        TicketSlaEvent,
        TicketSolved,
        TicketStatusChanged,
    )
    from crmcore_ticketing.models import SlaPolicy, Ticket


@hookspec
def crm_ticket_created(event: TicketCreated, ctx: HookContext) -> None:
    """A ticket was opened, by email, the web form, an agent (phone, chat) or the API.

    Fires after the ticket, its first message and its SLA clocks are written,
    inside the same transaction; raising rolls the ticket back (a veto). All
    implementations run; return values are ignored.

    :param event: Ids of the ticket and requester, tracking number, channel, priority, category.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_ticket_message_added(event: TicketMessageAdded, ctx: HookContext) -> None:
    """A message joined a ticket's thread: customer message, agent reply or internal note.

    Fires for the first message of a new ticket too (after ``crm_ticket_created``).
    Runs inside the transaction; raising rolls the message back. All
    implementations run; return values are ignored.

    :param event: Ticket, message, author type (``customer``/``agent``/``system``), public or note, channel.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_ticket_status_changed(event: TicketStatusChanged, ctx: HookContext) -> None:
    """A ticket moved between statuses (new, open, pending, on_hold, solved, closed).

    Runs inside the transaction, after the SLA clocks were paused or resumed;
    raising rolls the change back. All implementations run; return values are ignored.

    :param event: The ticket, its requester, the old and the new status.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_ticket_assigned(event: TicketAssigned, ctx: HookContext) -> None:
    """A ticket's assignee or group changed (by an agent, or by an escalation).

    Runs inside the transaction; raising rolls the assignment back. All
    implementations run; return values are ignored.

    :param event: The ticket, the new and previous assignee ids, the group (team) id.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_ticket_sla_warning(event: TicketSlaEvent, ctx: HookContext) -> None:
    """An SLA metric reached one of its policy's warning points before the breach.

    Fires once per point (``event.point``: ``"30m"`` before the breach, or
    ``"80%"`` of the target), at that time, from the ``ticketing.sla`` timer
    job's transaction. All implementations run; return values are ignored.

    :param event: The ticket, metric, policy, deadline and the warning point.
    :param ctx: The unit of work of the timer job.

    .. versionadded:: 0.1
    """


@hookspec
def crm_ticket_sla_breached(event: TicketSlaEvent, ctx: HookContext) -> None:
    """An SLA metric passed its deadline unfulfilled.

    Fires once per metric run, at the breach, from the timer job's transaction,
    or at once inside the change that moved a deadline into the past (a new
    priority or policy). All implementations run; return values are ignored.

    :param event: The ticket, metric, policy and the deadline that passed.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_ticket_sla_escalated(event: TicketSlaEvent, ctx: HookContext) -> None:
    """A level of a metric's escalation ladder ran after its breach.

    The built-in actions (``reassign``, ``raise_priority``, ``notify``) are
    done before this fires; ``event.level`` and ``event.action`` say which.
    Runs in the timer job's transaction. All implementations run; return
    values are ignored.

    :param event: The ticket, metric, deadline, escalation level and action.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_ticket_sla_fulfilled(event: TicketSlaEvent, ctx: HookContext) -> None:
    """An SLA metric was fulfilled (a reply, an update, the ticket solved).

    ``event.late`` is True when it was met after its deadline. Runs inside
    the transaction of the reply or status change. All implementations run;
    return values are ignored.

    :param event: The ticket, metric, policy, deadline and whether it was late.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_ticket_solved(event: TicketSolved, ctx: HookContext) -> None:
    """A ticket was solved: the moment to send a satisfaction survey.

    Runs inside the transaction that solved it, after the SLA metrics were
    fulfilled. All implementations run; return values are ignored.

    :param event: The ticket, requester, assignee, channel, category and product.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_ticket_reopened(event: TicketReopened, ctx: HookContext) -> None:
    """A solved (or, as configured, closed) ticket was opened again.

    The resolution clock resumes from where it stopped. Runs inside the
    transaction. All implementations run; return values are ignored.

    :param event: The ticket, requester and the status it left.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def crm_ticket_sla_target(ticket: Ticket, metric: str, policy: SlaPolicy | None, ctx: HookContext) -> int | None:
    """Decide the target of one SLA metric of a ticket, instead of the policy's.

    Called whenever a metric starts or is re-targeted (a priority or policy
    change). Stops at the first non-None result; return ``None`` to keep the
    policy's target. The metric counts on the policy's clock (business or
    calendar hours) either way. Runs inside the transaction; raising vetoes
    the change.

    :param ticket: The ticket (read-only), with its current priority, channel and category.
    :param metric: ``first_reply``, ``next_reply``, ``periodic_update`` or ``resolution``.
    :param policy: The matched policy, or None when no policy applies.
    :param ctx: The unit of work.
    :returns: The target in minutes, or ``None`` to abstain.

    .. versionadded:: 0.1
    """

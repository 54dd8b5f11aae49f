"""Tickets: open, reply, note, assign, change status and fields; every change in the history.

Each public method of :class:`TicketService` is one transaction. The ``*_in``
functions do the same work inside a unit of work that is already open (mail
ingestion, the web form, SLA escalations) and are what the methods call.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from email.utils import make_msgid, parseaddr
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, or_, select

from crmcore import permissions
from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.i18n import N_
from crmcore.mail import MailMessage, queue_mail
from crmcore.models import Contact, Organization, Team, User
from crmcore.services.base import Service, get_contact, get_user
from crmcore.validation import clean_text, normalize_email, parse_datetime
from crmcore_ticketing import attachments as files
from crmcore_ticketing import numbers
from crmcore_ticketing.batch import Deferred
from crmcore_ticketing.engine import Engine, policy_of
from crmcore_ticketing.events import (
    TicketAssigned,
    TicketCreated,
    TicketMessageAdded,
    TicketReopened,
    TicketSolved,
    TicketStatusChanged,
)
from crmcore_ticketing.models import (
    CATEGORIES,
    CHANNELS,
    METRICS,
    PRIORITIES,
    Attachment,
    HistoryEntry,
    Message,
    SlaMetric,
    Status,
    Ticket,
)
from crmcore_ticketing.policies import contract_for, match_policy

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.mail import Attachment as FileData
    from crmcore_ticketing.models import SlaPolicy

DONE = (Status.SOLVED.value, Status.CLOSED.value)
MAX_BODY = 100_000


# -- small helpers ------------------------------------------------------------------


def setting(ctx_or_crm: Any, name: str) -> Any:
    """A ticketing setting."""
    crm = getattr(ctx_or_crm, "crm", ctx_or_crm)
    return crm.plugin_setting("ticketing", name)


def engine(ctx: HookContext) -> Engine:
    """The SLA engine of this unit of work."""
    found = ctx.cache.get("ticketing:engine")
    if found is None:
        found = ctx.cache["ticketing:engine"] = Engine(ctx)
    result: Engine = found
    return result


def record_change(ctx: HookContext, ticket: Ticket, field: str, old: Any, new: Any) -> None:
    """Write one line of the ticket's history (in a mail batch, at the end of the batch)."""
    line = {"ticket_id": ticket.id, "occurred_at": ctx.now, "actor_id": ctx.actor.user_id, "actor": ctx.actor.label,
            "field": field, "old_value": None if old is None else str(old)[:500],
            "new_value": None if new is None else str(new)[:500]}  # fmt: skip
    deferred = Deferred.of(ctx)
    if deferred is not None:
        deferred.history.append(line)
    else:
        ctx.session.add(HistoryEntry(**line))


def get_ticket(ctx: HookContext, ref: int | str | Ticket) -> Ticket:
    """A ticket by id, tracking number (forgiving case and look-alikes) or instance."""
    if isinstance(ref, Ticket):
        found = ctx.session.get(Ticket, ref.id)
    elif isinstance(ref, int) or str(ref).strip().lstrip("#").isdigit():
        found = ctx.session.get(Ticket, int(str(ref).strip().lstrip("#")))
    else:
        number = numbers.normalize(str(ref), setting(ctx, "tracking_prefix"))
        found = ctx.first(Ticket, Ticket.number == number) if number else None
    if found is None:
        raise NotFound.of(N_("no ticket %(ref)s"), ref=repr(ref))
    if ctx.actor.user_id is not None:
        permissions.require(ctx, "ticketing.view")
        if not _reaches(ctx, found):
            raise NotFound.of(N_("no ticket %(ref)s"), ref=repr(ref))
    return found


#: Scopes that reach every ticket (support leads supervise the whole queue).
TICKET_WIDE_SCOPES = ("managed", "all")


def _reaches(ctx: HookContext, ticket: Ticket) -> bool:
    grants = permissions.grants(ctx)
    if grants.scope in TICKET_WIDE_SCOPES or ticket.assignee_id == grants.user_id or ticket.team_id in grants.team_ids:
        return True
    if ticket.assignee_id is None and ticket.team_id is None:
        return True
    requester = ctx.session.get(Contact, ticket.requester_id)
    return requester is not None and permissions.reaches(ctx, requester.owner_id)


def ticket_reach(ctx: HookContext) -> ColumnElement[bool] | None:
    """A WHERE condition limiting tickets to the acting user's reach (None: every ticket).

    Managers (scope ``managed``) and roles reaching every record see every
    ticket; a user with a narrower scope (``team``, ``own``) sees the shared
    queue (tickets assigned to no one and no group), the tickets assigned to
    them or their teams, and those of requesters they reach.
    """
    grants = permissions.grants(ctx)
    if grants.user_id is None or grants.scope in TICKET_WIDE_SCOPES:
        return None
    conditions: list[ColumnElement[bool]] = [
        Ticket.assignee_id == grants.user_id,
        and_(Ticket.assignee_id.is_(None), Ticket.team_id.is_(None)),
    ]
    if grants.team_ids:
        conditions.append(Ticket.team_id.in_(sorted(grants.team_ids)))
    owners = permissions.owner_condition(ctx, Contact.owner_id)
    if owners is not None:
        conditions.append(Ticket.requester_id.in_(select(Contact.id).where(owners)))
    return or_(*conditions)


def _choice(value: Any, field: str, allowed: Sequence[str], errors: dict[str, str]) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).strip().lower().replace(" ", "_")
    if text == "pending_customer":
        text = "pending"
    if text not in allowed:
        errors[field] = f"unknown {field} {value!r}; one of {', '.join(allowed)}"
        return None
    return text


def clean_tags(tags: Iterable[str] | str | None) -> list[str]:
    """Tags lower-cased, trimmed, unique, in order."""
    if tags is None:
        return []
    items = tags.split(",") if isinstance(tags, str) else list(tags)
    result: list[str] = []
    for tag in items:
        text = clean_text(tag, "tags", 60)
        if text and text.lower() not in result:
            result.append(text.lower())
    return result


def resolve_requester(ctx: HookContext, requester: Any, name: str | None = None) -> Contact:
    """The requesting contact: by id or email; an unknown email is captured as a new lead."""
    if isinstance(requester, Contact):
        return requester
    if requester is None or requester == "":
        raise ValidationError({"requester": "is required (a contact id or an email address)"})
    if isinstance(requester, int) or str(requester).strip().isdigit():
        return get_contact(ctx, requester)
    display, address = parseaddr(str(requester))
    normalized = _normalized_email(ctx, address or str(requester))
    known: dict[str, Contact | None] | None = ctx.cache.get(REQUESTERS)
    if known is not None and normalized in known:
        found = known[normalized]
    else:
        found = ctx.first(Contact, Contact.email_normalized == normalized, Contact.merged_into_id.is_(None))
    if found is not None:
        if found.erased_at is not None:
            raise ValidationError({"requester": "this contact was erased"})
        return found
    first, _, last = (name or display or "").strip().partition(" ")
    fields: dict[str, Any] = {"email": normalized, "source": "support"}
    if first:
        fields["first_name"] = first[:120]
    if last:
        fields["last_name"] = last[:120]
    contact: Contact = ctx.crm.leads.capture(**fields)
    if known is not None:
        known[normalized] = contact
    return contact


def _normalized_email(ctx: HookContext, address: str) -> str:
    """*address* normalized (remembered for the unit of work: a batch sees the same senders often)."""
    memo: dict[str, str] = ctx.cache.setdefault("ticketing:emails", {})
    found = memo.get(address)
    if found is None:
        found = memo[address] = normalize_email(address, "requester")[1]
    return found


#: ``ctx.cache`` key of a batch's requesters by normalized email (None: known not to exist).
REQUESTERS = "ticketing:requesters"


def preload_requesters(ctx: HookContext, emails: Iterable[str]) -> None:
    """Look up the requesters of a batch with one query per 500 addresses; later lookups hit the cache."""
    known: dict[str, Contact | None] = ctx.cache.setdefault(REQUESTERS, {})
    wanted = []
    for email in emails:
        try:
            normalized = _normalized_email(ctx, email)
        except ValidationError:
            continue
        if normalized not in known:
            known[normalized] = None
            wanted.append(normalized)
    for start in range(0, len(wanted), 500):
        query = select(Contact).where(Contact.email_normalized.in_(wanted[start : start + 500]),
                                      Contact.merged_into_id.is_(None))  # fmt: skip
        for contact in ctx.session.scalars(query):
            known[contact.email_normalized or ""] = contact


# -- opening and messages --------------------------------------------------------------


def open_in(
    ctx: HookContext,
    *,
    subject: Any,
    body: Any,
    requester: Contact,
    channel: str = "api",
    priority: str | None = None,
    category: str | None = None,
    product: str | None = None,
    organization: int | None = None,
    assignee: Any = None,
    team: Any = None,
    tags: Iterable[str] | str | None = None,
    by_agent: bool = False,
    public: bool = True,
    attachments: Sequence[FileData] = (),
    message_id: str | None = None,
    follow_up_of: Ticket | None = None,
) -> Ticket:
    """Open a ticket with its first message inside *ctx*; all fields validated at once."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for field, check in (
        ("subject", lambda: clean_text(subject, "subject", 255, required=True)),
        ("body", lambda: _body(body)),
        ("product", lambda: clean_text(product, "product", 120)),
        ("tags", lambda: clean_tags(tags)),
    ):
        try:
            values[field] = check()
        except ValidationError as exc:
            errors.update(exc.errors)
    channel_value = _choice(channel, "channel", CHANNELS, errors) or "api"
    priority_value = _choice(priority, "priority", PRIORITIES, errors) or "normal"
    category_value = _choice(category, "category", CATEGORIES, errors) or "question"
    try:
        files.check_sizes(ctx.crm, attachments)
    except ValidationError as exc:
        errors.update(exc.errors)
    assignee_row = team_row = None
    try:
        assignee_row = get_user(ctx, assignee, "assignee")
    except ValidationError as exc:
        errors.update(exc.errors)
    try:
        team_row = _team(ctx, team)
    except ValidationError as exc:
        errors.update(exc.errors)
    organization_id = organization if organization is not None else requester.organization_id
    if organization is not None and ctx.session.get(Organization, organization) is None:
        errors["organization"] = f"no organization {organization}"
    if errors:
        raise ValidationError(errors)
    ticket = Ticket(
        number=_new_number(ctx), subject=values["subject"], requester_id=requester.id, organization_id=organization_id,
        product=values["product"], category=category_value, priority=priority_value, status=Status.NEW.value,
        assignee_id=assignee_row.id if assignee_row else None, team_id=team_row.id if team_row else None,
        tags=values["tags"], channel=channel_value, created_at=ctx.now, updated_at=ctx.now,
        status_log=[[ctx.now.isoformat(), Status.NEW.value]], opened_by_agent=by_agent and public,
        follow_up_of_id=follow_up_of.id if follow_up_of else None,
    )  # fmt: skip
    contract, note = contract_for(ctx, ticket)
    policy = match_policy(ctx, ticket, contract.tier if contract else None)
    ticket.contract_id, ticket.policy_id, ticket.sla_note = (contract.id if contract else None,
                                                             policy.id if policy else None, note)  # fmt: skip
    ctx.session.add(ticket)
    ctx.session.flush()
    # one line for the creation (with its first message and policy), so a new ticket costs one history row
    created = f"{ticket.number} via {channel_value}" + (f", policy {policy.name}" if policy is not None else "")
    record_change(ctx, ticket, "created", None, created)
    if follow_up_of is not None:
        record_change(ctx, ticket, "follow_up_of", None, follow_up_of.number)
    if note:
        record_change(ctx, ticket, "sla_note", None, note)
    sla = engine(ctx)
    sla.adopt(ticket)
    sla.start(ticket, "first_reply", ticket.created_at)
    sla.start(ticket, "resolution", ticket.created_at)
    sla.update_next_due(ticket)  # now, so it is written with the first message (one flush, not two)
    ctx.call(
        "crm_ticket_created",
        event=TicketCreated(
            ticket_id=ticket.id, number=ticket.number, contact_id=requester.id, channel=channel_value,
            priority=priority_value, category=category_value, occurred_at=ctx.now,
        ),
    )  # fmt: skip
    if by_agent:
        add_message_in(ctx, ticket, author_type="agent", body=values["body"], public=public, channel=channel_value,
                       user_id=ctx.actor.user_id, attachments=attachments, opening=True, send=False)  # fmt: skip
    else:
        add_message_in(ctx, ticket, author_type="customer", body=values["body"], public=True, opening=True,
                       channel=channel_value, contact_id=requester.id, attachments=attachments,
                       message_id=message_id)  # fmt: skip
    if assignee_row is not None or team_row is not None:
        ctx.call("crm_ticket_assigned", event=TicketAssigned(
            ticket_id=ticket.id, contact_id=ticket.requester_id, assignee_id=ticket.assignee_id,
            previous_assignee_id=None, team_id=ticket.team_id, occurred_at=ctx.now))  # fmt: skip
    return ticket


def _body(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError({"body": N_("is required")})
    if len(value) > MAX_BODY:
        raise ValidationError.on("body", N_("is longer than %(limit)s characters"), limit=f"{MAX_BODY:,}")
    return value.replace("\x00", "").strip()


#: ``ctx.cache`` key of tracking numbers a batch checked to be free.
FREE_NUMBERS = "ticketing:free_numbers"


def reserve_numbers(ctx: HookContext, count: int) -> None:
    """Draw *count* tracking numbers and check them free with one query (for a batch of new tickets)."""
    drawn = {numbers.generate(setting(ctx, "tracking_prefix")) for _ in range(count)}
    taken = set(ctx.session.scalars(select(Ticket.number).where(Ticket.number.in_(sorted(drawn)))))
    ctx.cache.setdefault(FREE_NUMBERS, []).extend(sorted(drawn - taken))


def _new_number(ctx: HookContext) -> str:
    free: list[str] | None = ctx.cache.get(FREE_NUMBERS)
    if free:
        return free.pop()
    prefix = setting(ctx, "tracking_prefix")
    for _ in range(10):
        number = numbers.generate(prefix)
        if ctx.scalar(select(Ticket.id).where(Ticket.number == number)) is None:
            return number
    raise Conflict("could not find a free tracking number; widen the prefix")  # pragma: no cover


def _team(ctx: HookContext, ref: Any) -> Team | None:
    if ref is None or ref == "":
        return None
    row = (
        ctx.session.get(Team, int(ref))
        if isinstance(ref, int) or str(ref).isdigit()
        else ctx.first(Team, Team.name == str(ref).strip())
    )
    if row is None:
        raise ValidationError({"team": f"no team {ref!r}"})
    return row


def _apply_policy(ctx: HookContext, ticket: Ticket) -> SlaPolicy | None:
    """Pick the contract and policy for *ticket*; note an expired contract for the agent."""
    contract, note = contract_for(ctx, ticket)
    policy = match_policy(ctx, ticket, contract.tier if contract else None)
    changed = (ticket.contract_id, ticket.policy_id) != (
        contract.id if contract else None,
        policy.id if policy else None,
    )
    if changed and ticket.policy_id is not None:
        old = policy_of(ctx, ticket.policy_id)
        record_change(ctx, ticket, "policy", old.name if old else None, policy.name if policy else None)
    elif changed:
        record_change(ctx, ticket, "policy", None, policy.name if policy else "none")
    ticket.contract_id = contract.id if contract else None
    ticket.policy_id = policy.id if policy else None
    if note != ticket.sla_note:
        if note:
            record_change(ctx, ticket, "sla_note", ticket.sla_note, note)
        ticket.sla_note = note
    return policy


def add_message_in(
    ctx: HookContext,
    ticket: Ticket,
    *,
    author_type: str,
    body: str,
    public: bool,
    channel: str,
    contact_id: int | None = None,
    user_id: int | None = None,
    attachments: Sequence[FileData] = (),
    message_id: str | None = None,
    opening: bool = False,
    send: bool = True,
    status: str | None = None,
) -> Message:
    """Add a message to the thread and run the SLA rules it triggers; queue the email of a reply."""
    files.check_sizes(ctx.crm, attachments)
    if author_type == "customer" and contact_id is None:
        contact_id = ticket.requester_id
    if author_type == "agent" and public and send and message_id is None:
        message_id = make_msgid(domain=_mail_domain(ctx))
    message = Message(
        ticket_id=ticket.id, author_type=author_type, contact_id=contact_id, user_id=user_id, public=public,
        channel=channel, body=body, message_id=message_id, created_at=ctx.now,
    )  # fmt: skip
    ctx.session.add(message)
    if ticket.updated_at != ctx.now:  # set before the flush, so the ticket's update rides with the message's insert
        ticket.updated_at = ctx.now
    ctx.session.flush()
    for item in attachments:
        relative, digest = files.store(ctx.crm, item.data)
        ctx.session.add(Attachment(message_id=message.id, filename=files.safe_filename(item.filename),
                                   content_type=(item.content_type or "application/octet-stream")[:120],
                                   size=len(item.data), sha256=digest, path=relative))  # fmt: skip
    if not opening:
        kind = "note" if not public else "reply" if author_type == "agent" else "message"
        record_change(ctx, ticket, kind, None, f"#{message.id} by {author_type} via {channel}")
    sla = engine(ctx)
    if author_type == "customer" and public:
        if ticket.status == Status.SOLVED.value or ticket.status == Status.PENDING.value:
            set_status_in(ctx, ticket, Status.OPEN.value)
        answered = ticket.first_reply_at is not None or ticket.opened_by_agent
        open_runs = sla.runs(ticket)
        first_running = any(r.metric == "first_reply" for r in open_runs)
        if answered and not first_running and not any(r.metric == "next_reply" for r in open_runs):
            sla.start(ticket, "next_reply", ctx.now)
    elif author_type == "agent" and public:
        counts = not opening
        for run in sla.runs(ticket):
            if (run.metric == "first_reply" and counts) or run.metric in ("next_reply", "periodic_update"):
                sla.fulfil(ticket, run, ctx.now)
        if counts and ticket.first_reply_at is None:
            ticket.first_reply_at = ctx.now
        if ticket.status not in DONE and (status or ticket.status) not in DONE:
            sla.start(ticket, "periodic_update", ctx.now)
        if status is None and ticket.status == Status.NEW.value:
            status = Status.OPEN.value
    if status is not None and status != ticket.status:
        set_status_in(ctx, ticket, status)
    sla.update_next_due(ticket)
    ctx.call(
        "crm_ticket_message_added",
        event=TicketMessageAdded(
            ticket_id=ticket.id, contact_id=ticket.requester_id, message_id=message.id, author_type=author_type,
            public=public, channel=channel, occurred_at=ctx.now,
        ),
    )  # fmt: skip
    if author_type == "agent" and public and send:
        send_reply(ctx, ticket, message, attachments)
    return message


def _mail_domain(ctx: HookContext) -> str:
    address = parseaddr(setting(ctx, "support_address") or ctx.crm.settings.mail_from)[1]
    return address.rpartition("@")[2] or "localhost"


def support_address(ctx: HookContext) -> str:
    """The address customers write to and replies come from."""
    return str(setting(ctx, "support_address") or ctx.crm.settings.mail_from)


def thread_headers(ctx: HookContext, ticket: Ticket) -> dict[str, str]:
    """``In-Reply-To`` and ``References`` for a message on *ticket*'s thread."""
    ids: list[str] = [
        i
        for i in ctx.session.scalars(
            select(Message.message_id)
            .where(Message.ticket_id == ticket.id, Message.message_id.is_not(None), Message.public)
            .order_by(Message.created_at, Message.id)
        )
        if i
    ]
    if not ids:
        return {}
    return {"In-Reply-To": ids[-1], "References": " ".join(ids[-20:])}


def send_reply(ctx: HookContext, ticket: Ticket, message: Message, attachments: Sequence[FileData] = ()) -> None:
    """Queue the email of an agent's public reply: tracking number in the subject, threaded."""
    requester = ctx.session.get(Contact, ticket.requester_id)
    if requester is None or not requester.email or requester.do_not_contact:
        return
    headers = thread_headers(ctx, ticket)
    # the reply itself is the newest message: thread it on what came before
    previous = headers.get("References", "").replace(message.message_id or "", "").split()
    headers = {"In-Reply-To": previous[-1], "References": " ".join(previous)} if previous else {}
    agent = ctx.session.get(User, message.user_id) if message.user_id else None
    text = ctx.crm.templates.get_template("ticketing/reply.txt").render(
        ticket=ticket, message=message, agent=agent, requester=requester
    )
    queue_mail(
        ctx,
        MailMessage(
            to=requester.email, subject=f"[{ticket.number}] {ticket.subject}", text=text,
            sender=support_address(ctx), reply_to=support_address(ctx), headers=headers,
            message_id=message.message_id, attachments=tuple(attachments),
        ),
        key=f"ticketing:reply:{message.id}",
    )  # fmt: skip


def acknowledge(ctx: HookContext, ticket: Ticket) -> None:
    """Queue the "we received your request" email (auto-submitted, so it never loops)."""
    requester = ctx.session.get(Contact, ticket.requester_id)
    if requester is None or not requester.email or not setting(ctx, "acknowledge"):
        return
    text = ctx.crm.templates.get_template("ticketing/acknowledge.txt").render(ticket=ticket, requester=requester)
    headers = {"Auto-Submitted": "auto-replied", **thread_headers(ctx, ticket)}
    queue_mail(
        ctx,
        MailMessage(to=requester.email, subject=f"[{ticket.number}] {ticket.subject}", text=text,
                    sender=support_address(ctx), reply_to=support_address(ctx), headers=headers),
        key=f"ticketing:ack:{ticket.id}",
    )  # fmt: skip


# -- status, assignment, fields ----------------------------------------------------------


def set_status_in(ctx: HookContext, ticket: Ticket, status: str) -> None:
    """Move *ticket* to *status*: pause or resume clocks, fulfil on solve, resume on reopen."""
    errors: dict[str, str] = {}
    new = _choice(status, "status", [s.value for s in Status], errors)
    if errors or new is None:
        raise ValidationError(errors or {"status": "is required"})
    old = ticket.status
    if new == old:
        return
    if old == Status.CLOSED.value:
        raise Conflict.of(N_("ticket %(number)s is closed; a new message opens a follow-up"), number=ticket.number)
    if new == Status.NEW.value:
        raise ValidationError({"status": N_("a ticket cannot go back to new")})
    if new == Status.CLOSED.value and old != Status.SOLVED.value:
        set_status_in(ctx, ticket, Status.SOLVED.value)
        old = ticket.status
    ticket.status = new
    ticket.status_log = [*(ticket.status_log or []), [ctx.now.isoformat(), new]]
    ticket.updated_at = ctx.now
    record_change(ctx, ticket, "status", old, new)
    sla = engine(ctx)
    if new in DONE and old not in DONE:
        ticket.solved_at = ctx.now
        for run in sla.runs(ticket):
            sla.fulfil(ticket, run, ctx.now)
    elif old in DONE and new not in DONE:
        ticket.solved_at = None
        resolved = [r for r in sla.runs(ticket, open_only=False) if r.metric == "resolution" and r.state == "fulfilled"]
        latest = resolved[-1] if resolved else None
        if latest is not None:
            sla.reopen(ticket, latest)
    else:
        for run in sla.runs(ticket):
            sla.refresh(ticket, run)
    if new == Status.CLOSED.value:
        ticket.closed_at = ctx.now
    sla.update_next_due(ticket)
    ctx.call(
        "crm_ticket_status_changed",
        event=TicketStatusChanged(
            ticket_id=ticket.id, contact_id=ticket.requester_id, from_status=old, to_status=new, occurred_at=ctx.now
        ),
    )
    if new == Status.SOLVED.value:
        ctx.call("crm_ticket_solved", event=TicketSolved(
            ticket_id=ticket.id, contact_id=ticket.requester_id, assignee_id=ticket.assignee_id, channel=ticket.channel,
            category=ticket.category, product=ticket.product, occurred_at=ctx.now))  # fmt: skip
    elif old in DONE and new not in DONE:
        ctx.call("crm_ticket_reopened", event=TicketReopened(
            ticket_id=ticket.id, contact_id=ticket.requester_id, from_status=old, occurred_at=ctx.now))  # fmt: skip


def reopen_closed_in(ctx: HookContext, ticket: Ticket) -> None:
    """Reopen a closed ticket (the ``reply_to_closed = "reopen"`` setting)."""
    ticket.status = Status.SOLVED.value  # closed is final for agents; a customer's reply may lift it
    ticket.closed_at = None
    record_change(ctx, ticket, "status", Status.CLOSED.value, Status.SOLVED.value)
    set_status_in(ctx, ticket, Status.OPEN.value)


def assign_in(ctx: HookContext, ticket: Ticket, assignee: Any, team: Any, *, reason: str | None = None) -> None:
    """Give *ticket* to a user and/or group; ``""`` unassigns."""
    errors: dict[str, str] = {}
    user = team_row = None
    try:
        user = get_user(ctx, assignee, "assignee") if assignee not in (None, "") else None
    except ValidationError as exc:
        errors.update(exc.errors)
    try:
        team_row = _team(ctx, team)
    except ValidationError as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationError(errors)
    previous = ticket.assignee_id
    if assignee is not None:
        new_id = user.id if user else None
        if new_id != ticket.assignee_id:
            old_user = ctx.session.get(User, ticket.assignee_id) if ticket.assignee_id else None
            record_change(
                ctx,
                ticket,
                "assignee",
                old_user.email if old_user else None,
                (user.email if user else None) if not reason else f"{user.email if user else None} ({reason})",
            )
            ticket.assignee_id = new_id
    if team is not None:
        new_team = team_row.id if team_row else None
        if new_team != ticket.team_id:
            old_team = ctx.session.get(Team, ticket.team_id) if ticket.team_id else None
            record_change(
                ctx, ticket, "group", old_team.name if old_team else None, team_row.name if team_row else None
            )
            ticket.team_id = new_team
    ticket.updated_at = ctx.now
    ctx.call("crm_ticket_assigned", event=TicketAssigned(
        ticket_id=ticket.id, contact_id=ticket.requester_id, assignee_id=ticket.assignee_id,
        previous_assignee_id=previous, team_id=ticket.team_id, occurred_at=ctx.now))  # fmt: skip


EDITABLE = ("subject", "priority", "category", "product", "tags", "organization")


def change_fields_in(ctx: HookContext, ticket: Ticket, changes: Mapping[str, Any]) -> None:
    """Change ticket fields; a new priority, category or organization re-matches the policy."""
    errors: dict[str, str] = {}
    unknown = sorted(set(changes) - set(EDITABLE))
    for key in unknown:
        errors[key] = f"cannot be changed here; editable: {', '.join(EDITABLE)}"
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "priority":
            clean[key] = _choice(value, "priority", PRIORITIES, errors)
        elif key == "category":
            clean[key] = _choice(value, "category", CATEGORIES, errors)
        elif key == "subject":
            try:
                clean[key] = clean_text(value, "subject", 255, required=True)
            except ValidationError as exc:
                errors.update(exc.errors)
        elif key == "product":
            try:
                clean[key] = clean_text(value, "product", 120)
            except ValidationError as exc:
                errors.update(exc.errors)
        elif key == "tags":
            try:
                clean[key] = clean_tags(value)
            except ValidationError as exc:
                errors.update(exc.errors)
        elif key == "organization":
            if value is not None and ctx.session.get(Organization, int(value)) is None:
                errors[key] = f"no organization {value}"
            clean["organization_id"] = int(value) if value is not None else None
    if errors:
        raise ValidationError(errors)
    touched = False
    for key, value in clean.items():
        if value is None and key in ("priority", "category"):
            continue
        old = getattr(ticket, key)
        if old != value:
            setattr(ticket, key, value)
            record_change(ctx, ticket, key.removesuffix("_id"), old, value)
            touched = touched or key in ("priority", "category", "organization_id", "product")
    ticket.updated_at = ctx.now
    if touched and ticket.status != Status.CLOSED.value:
        _apply_policy(ctx, ticket)
        engine(ctx).retarget(ticket)


def notify_escalation(ctx: HookContext, ticket: Ticket, run: SlaMetric, step: Mapping[str, Any], level: int) -> None:
    """Queue the escalation email of one ladder level (to its address, else the assignee)."""
    to = step.get("to")
    if not to and ticket.assignee_id:
        user = ctx.session.get(User, ticket.assignee_id)
        to = user.email if user else None
    if not to:
        record_change(ctx, ticket, f"sla.{run.metric}", None, f"escalation level {level}: nobody to notify")
        return
    text = ctx.crm.templates.get_template("ticketing/escalation.txt").render(ticket=ticket, run=run, level=level)
    queue_mail(
        ctx,
        MailMessage(to=to, subject=f"[{ticket.number}] SLA {run.metric.replace('_', ' ')} escalation {level}",
                    text=text, sender=support_address(ctx)),
        key=f"ticketing:escalation:{run.id}:{level}",
    )  # fmt: skip


# -- the service ---------------------------------------------------------------------------


class TicketService(Service):
    """Tickets: ``ticketing(crm).tickets``."""

    def open(
        self,
        *,
        subject: str,
        body: str,
        requester: Any,
        requester_name: str | None = None,
        channel: str = "api",
        priority: str | None = None,
        category: str | None = None,
        product: str | None = None,
        organization: int | None = None,
        assignee: Any = None,
        team: Any = None,
        tags: Iterable[str] | str | None = None,
        by_agent: bool | None = None,
        public: bool = True,
        attachments: Sequence[FileData] = (),
        actor: Any = None,
    ) -> Ticket:
        """Open a ticket. An agent logging a call or chat passes ``channel="phone"`` / ``"chat"``.

        *requester* is a contact id, an email (an unknown one is captured as a
        lead) or a Contact. With an acting user, the agent's message opens the
        thread (``by_agent``); otherwise the body is the customer's message.
        """
        with self.crm.transaction(actor) as ctx:
            contact = resolve_requester(ctx, requester, requester_name)
            agent = (not ctx.actor.is_system) if by_agent is None else by_agent
            ticket = open_in(
                ctx, subject=subject, body=body, requester=contact, channel=channel, priority=priority,
                category=category, product=product, organization=organization, assignee=assignee, team=team,
                tags=tags, by_agent=agent, public=public, attachments=attachments,
            )  # fmt: skip
            if channel in ("email", "web") and not agent:
                acknowledge(ctx, ticket)
            return ticket

    def reply(
        self,
        ticket: int | str,
        body: str,
        *,
        status: str | None = None,
        channel: str | None = None,
        attachments: Sequence[FileData] = (),
        send: bool = True,
        actor: Any = None,
    ) -> Message:
        """An agent's public reply, emailed to the requester (tracking number in the subject).

        *status* sets the ticket's status with the reply (``pending`` to wait
        for the customer, ``solved``). *channel* records a reply given by phone
        or chat (then nothing is emailed).
        """
        text = _body(body)
        with self.crm.transaction(actor) as ctx:
            row = get_ticket(ctx, ticket)
            permissions.require(ctx, "ticketing.reply")
            _writable(row)
            errors: dict[str, str] = {}
            via = _choice(channel, "channel", CHANNELS, errors) or "email"
            if errors:
                raise ValidationError(errors)
            return add_message_in(ctx, row, author_type="agent", body=text, public=True, channel=via,
                                  user_id=ctx.actor.user_id, attachments=attachments, status=status,
                                  send=send and via == "email")  # fmt: skip

    def note(self, ticket: int | str, body: str, *, attachments: Sequence[FileData] = (), actor: Any = None) -> Message:
        """An internal note: never shown to the customer, never fulfils an SLA target."""
        text = _body(body)
        with self.crm.transaction(actor) as ctx:
            row = get_ticket(ctx, ticket)
            permissions.require(ctx, "ticketing.reply")
            return add_message_in(ctx, row, author_type="agent", body=text, public=False, channel="api",
                                  user_id=ctx.actor.user_id, attachments=attachments)  # fmt: skip

    def customer_message(
        self, ticket: int | str, body: str, *, channel: str = "api", attachments: Sequence[FileData] = (),
        actor: Any = None,
    ) -> Message:  # fmt: skip
        """Log what the customer said (on the phone, in a chat) on an existing ticket."""
        text = _body(body)
        with self.crm.transaction(actor) as ctx:
            row = get_ticket(ctx, ticket)
            permissions.require(ctx, "ticketing.reply")
            _writable(row)
            errors: dict[str, str] = {}
            via = _choice(channel, "channel", CHANNELS, errors) or "api"
            if errors:
                raise ValidationError(errors)
            return add_message_in(ctx, row, author_type="customer", body=text, public=True, channel=via,
                                  attachments=attachments)  # fmt: skip

    def assign(self, ticket: int | str, *, assignee: Any = None, team: Any = None, actor: Any = None) -> Ticket:
        """Assign to an agent (id or email) and/or a group (team name); ``""`` clears."""
        if assignee is None and team is None:
            raise ValidationError({"assignee": "give an assignee or a team"})
        with self.crm.transaction(actor) as ctx:
            row = get_ticket(ctx, ticket)
            permissions.require(ctx, "ticketing.reply")
            _writable(row)
            assign_in(ctx, row, assignee, team)
            return row

    def set_status(self, ticket: int | str, status: str, *, actor: Any = None) -> Ticket:
        """Change the status (new, open, pending, on_hold, solved, closed)."""
        with self.crm.transaction(actor) as ctx:
            row = get_ticket(ctx, ticket)
            permissions.require(ctx, "ticketing.reply")
            set_status_in(ctx, row, status)
            return row

    def close(self, ticket: int | str, *, actor: Any = None) -> Ticket:
        """Close a ticket (solving it first if needed); a later message opens a follow-up."""
        return self.set_status(ticket, Status.CLOSED.value, actor=actor)

    def update(self, ticket: int | str, *, actor: Any = None, **changes: Any) -> Ticket:
        """Change subject, priority, category, product, tags or organization (re-targets the SLA)."""
        with self.crm.transaction(actor) as ctx:
            row = get_ticket(ctx, ticket)
            permissions.require(ctx, "ticketing.reply")
            _writable(row)
            change_fields_in(ctx, row, changes)
            return row

    def set_due(self, ticket: int | str, metric: str, due_at: datetime | str, *, actor: Any = None) -> SlaMetric:
        """Fix the deadline of a running metric by hand; it no longer moves with pauses or policies."""
        when = parse_datetime(due_at, "due_at")
        if metric not in METRICS:
            raise ValidationError({"metric": f"unknown metric {metric!r}; metrics: {', '.join(METRICS)}"})
        with self.crm.transaction(actor) as ctx:
            row = get_ticket(ctx, ticket)
            run = next((r for r in reversed(engine(ctx).runs(row)) if r.metric == metric), None)
            if run is None:
                raise ValidationError({"metric": f"{metric} is not running on {row.number}"})
            record_change(ctx, row, f"sla.{metric}.due", run.due_at.isoformat() if run.due_at else None,
                          f"{when.isoformat() if when else None} (manual)")  # fmt: skip
            run.due_at, run.manual_due, run.target_source = when, True, "manual"
            engine(ctx).refresh(row, run)
            engine(ctx).update_next_due(row)
            return run

    def link_article(self, ticket: int | str, article: int | str, *, actor: Any = None) -> None:
        """Record that a knowledge-base article was used on this ticket."""
        from crmcore_ticketing.kb import get_article
        from crmcore_ticketing.models import TicketArticle

        with self.crm.transaction(actor) as ctx:
            row = get_ticket(ctx, ticket)
            found = get_article(ctx, article)
            if ctx.session.get(TicketArticle, (row.id, found.id)) is None:
                ctx.session.add(TicketArticle(ticket_id=row.id, article_id=found.id, linked_at=ctx.now))
                record_change(ctx, row, "article", None, found.slug)

    # -- reading -------------------------------------------------------------------------

    def get(self, ticket: int | str) -> Ticket:
        """One ticket by id or tracking number."""
        with self.crm.transaction() as ctx:
            return get_ticket(ctx, ticket)

    def list(
        self,
        *,
        status: Iterable[str] | str | None = None,
        assignee: Any = None,
        team: Any = None,
        requester: Any = None,
        channel: str | None = None,
        priority: str | None = None,
        breaching: bool = False,
        within: timedelta = timedelta(hours=2),
        limit: int = 100,
    ) -> builtins.list[Ticket]:
        """Tickets, newest first; ``breaching=True``: running deadlines before now + *within*, earliest first."""
        with self.crm.transaction() as ctx:
            if ctx.actor.user_id is not None:
                permissions.require(ctx, "ticketing.view")
            query = select(Ticket)
            reach = ticket_reach(ctx)
            if reach is not None:
                query = query.where(reach)
            if breaching:
                query = query.where(Ticket.next_due_at.is_not(None), Ticket.next_due_at <= ctx.now + within)
                query = query.order_by(Ticket.next_due_at, Ticket.id)
            else:
                query = query.order_by(Ticket.created_at.desc(), Ticket.id.desc())
            if status:
                statuses = [status] if isinstance(status, str) else list(status)
                errors: dict[str, str] = {}
                clean = [_choice(s, "status", [v.value for v in Status], errors) for s in statuses]
                if errors:
                    raise ValidationError(errors)
                query = query.where(Ticket.status.in_(clean))
            if assignee not in (None, ""):
                user = get_user(ctx, assignee, "assignee")
                query = query.where(Ticket.assignee_id == (user.id if user else None))
            if team not in (None, ""):
                team_row = _team(ctx, team)
                query = query.where(Ticket.team_id == (team_row.id if team_row else None))
            if requester not in (None, ""):
                query = query.where(Ticket.requester_id == get_contact(ctx, requester).id)
            if channel:
                query = query.where(Ticket.channel == channel)
            if priority:
                query = query.where(Ticket.priority == priority)
            return list(ctx.session.scalars(query.limit(limit)))

    def messages(self, ticket: int | str, *, public_only: bool = False) -> builtins.list[Message]:
        """The thread, oldest first."""
        with self.crm.transaction() as ctx:
            row = get_ticket(ctx, ticket)
            query = select(Message).where(Message.ticket_id == row.id).order_by(Message.created_at, Message.id)
            if public_only:
                query = query.where(Message.public)
            return list(ctx.session.scalars(query))

    def attachments(self, message_id: int) -> builtins.list[Attachment]:
        """The attachments of one message."""
        with self.crm.transaction() as ctx:
            return list(ctx.session.scalars(select(Attachment).where(Attachment.message_id == message_id)))

    def history(self, ticket: int | str) -> builtins.list[HistoryEntry]:
        """Every change of the ticket, oldest first."""
        with self.crm.transaction() as ctx:
            row = get_ticket(ctx, ticket)
            return list(ctx.session.scalars(
                select(HistoryEntry).where(HistoryEntry.ticket_id == row.id).order_by(HistoryEntry.id)))  # fmt: skip

    def sla(self, ticket: int | str) -> builtins.list[dict[str, Any]]:
        """Each SLA metric run: target, due, fulfilled, breached, late, counted and paused minutes."""
        from crmcore_ticketing.explain import metric_rows

        with self.crm.transaction() as ctx:
            return metric_rows(ctx, get_ticket(ctx, ticket))

    def explain(self, ticket: int | str) -> builtins.list[str]:
        """How each deadline was computed: schedule, holidays and pauses crossed."""
        from crmcore_ticketing.explain import explain

        with self.crm.transaction() as ctx:
            return explain(ctx, get_ticket(ctx, ticket))

    def metrics(self, ticket: int | str) -> builtins.list[SlaMetric]:
        """Every SLA metric run of the ticket, oldest first."""
        with self.crm.transaction() as ctx:
            return engine(ctx).runs(get_ticket(ctx, ticket), open_only=False)


def _writable(ticket: Ticket) -> None:
    if ticket.status == Status.CLOSED.value:
        raise Conflict.of(N_("ticket %(number)s is closed; open a follow-up instead"), number=ticket.number)

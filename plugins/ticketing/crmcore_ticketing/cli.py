"""``crm ticket``, ``crm sla``, ``crm kb`` and ``crm contract``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from crmcore.cli import get_crm
from crmcore.cli.output import emit, emit_record, format_option
from crmcore.errors import ValidationError

TICKET_COLUMNS = ["number", "status", "priority", "channel", "subject", "requester", "assignee", "next_due_at"]


def _support() -> Any:
    from crmcore_ticketing import ticketing

    return ticketing(get_crm())


def _files(paths: tuple[str, ...]) -> list[Any]:
    import mimetypes

    from crmcore.mail import Attachment

    files = []
    for name in paths:
        path = Path(name)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        files.append(Attachment(filename=path.name, content_type=kind, data=path.read_bytes()))
    return files


def _done(fmt: str, text: str, record: dict[str, Any]) -> None:
    """Say what a command did: one line, or the record in json/csv."""
    if fmt == "table":
        click.echo(text)
    else:
        emit_record(record, fmt)


def message_record(message: Any) -> dict[str, Any]:
    """A thread message as plain data."""
    return {"id": message.id, "ticket_id": message.ticket_id, "author": message.author_type,
            "public": message.public, "channel": message.channel, "message_id": message.message_id,
            "created_at": message.created_at}  # fmt: skip


def ticket_row(ticket: Any) -> dict[str, Any]:
    """The fields of a ticket listing (requester and assignee as emails)."""
    from crmcore.models import Contact, User

    crm = get_crm()
    with crm.transaction() as ctx:
        requester = ctx.session.get(Contact, ticket.requester_id)
        assignee = ctx.session.get(User, ticket.assignee_id) if ticket.assignee_id else None
    return {
        "id": ticket.id, "number": ticket.number, "status": ticket.status, "priority": ticket.priority,
        "category": ticket.category, "channel": ticket.channel, "subject": ticket.subject,
        "requester": requester.email if requester else None, "assignee": assignee.email if assignee else None,
        "product": ticket.product, "tags": ticket.tags, "created_at": ticket.created_at,
        "next_due_at": ticket.next_due_at,
    }  # fmt: skip


# -- crm ticket ------------------------------------------------------------------------------


@click.group()
def ticket() -> None:
    """Support tickets: open, reply, assign, solve; email in; SLA deadlines."""


@ticket.command("open")
@click.option("--requester", required=True, help="Contact id or email (an unknown email becomes a lead).")
@click.option("--name", "requester_name", help="The requester's name, for a new contact.")
@click.option("--subject", required=True)
@click.option("--body", "-m", required=True, help="The first message.")
@click.option("--channel", default="api", show_default=True, help="email, web, phone, chat or api.")
@click.option("--priority", help="low, normal, high or urgent.")
@click.option("--category", help="question, incident, problem, request, complaint or task.")
@click.option("--product")
@click.option("--assignee", help="Agent (id or email).")
@click.option("--team", help="Group (team name).")
@click.option("--tag", "tags", multiple=True)
@click.option("--attach", "attach", multiple=True, type=click.Path(exists=True, dir_okay=False), help="A file.")
@click.option("--as", "actor", help="The agent logging it (then the body is the agent's message).")
@format_option
def ticket_open(fmt: str, attach: tuple[str, ...], actor: str | None, **options: Any) -> None:
    """Open a ticket; an agent logs a phone call or chat with --channel and --as.

    \b
    Examples:
      crm ticket open --requester ada@example.com --subject "Cannot log in" -m "Since this morning"
      crm ticket open --requester ada@example.com --channel phone --as agent@example.com \\
          --subject "Invoice question" -m "Called about invoice 1042"
    """
    opened = _support().tickets.open(attachments=_files(attach), actor=actor, **options)
    emit_record(ticket_row(opened), fmt)


@ticket.command("list")
@click.option("--status", "statuses", multiple=True, help="Only these statuses (repeat).")
@click.option("--assignee")
@click.option("--team")
@click.option("--requester")
@click.option("--channel")
@click.option("--priority")
@click.option("--breaching", is_flag=True, help="Running deadlines due soon or past, earliest first.")
@click.option("--within", default="2h", show_default=True, help="With --breaching: due before now + this.")
@click.option("--limit", default=100, show_default=True, type=int)
@format_option
def ticket_list(fmt: str, statuses: tuple[str, ...], within: str, **options: Any) -> None:
    """List tickets, newest first (or what is at risk with --breaching).

    \b
    Examples:
      crm ticket list --status open --status pending --assignee agent@example.com
      crm ticket list --breaching --within 4h --format json
    """
    from crmcore_ticketing.calendar import parse_duration

    rows = _support().tickets.list(status=statuses or None, within=parse_duration(within, "within"), **options)
    emit([ticket_row(t) for t in rows], fmt, TICKET_COLUMNS if fmt == "table" else None)


@ticket.command("show")
@click.argument("ref")
@click.option("--history", is_flag=True, help="Also print every change.")
@format_option
def ticket_show(ref: str, history: bool, fmt: str) -> None:
    """Show a ticket with its thread (notes marked), SLA and, with --history, every change.

    \b
    Example:
      crm ticket show TK-7F3K-9QWD --history
    """
    support = _support()
    found = support.tickets.get(ref)
    record = ticket_row(found)
    record["sla_note"] = found.sla_note
    messages = [
        {"id": m.id, "at": m.created_at, "author": m.author_type, "public": m.public, "channel": m.channel,
         "body": m.body, "attachments": [a.filename for a in support.tickets.attachments(m.id)]}
        for m in support.tickets.messages(ref)
    ]  # fmt: skip
    changes = [{"at": h.occurred_at, "actor": h.actor, "field": h.field, "old": h.old_value, "new": h.new_value}
               for h in support.tickets.history(ref)] if history or fmt == "json" else []  # fmt: skip
    if fmt == "json":
        emit_record({**record, "messages": messages, "history": changes, "sla": support.tickets.sla(ref)}, fmt)
        return
    emit_record(record, fmt)
    if fmt == "csv":
        return
    for message in messages:
        kind = "" if message["public"] else " [internal note]"
        click.echo(f"\n--- {message['at']:%Y-%m-%d %H:%M} {message['author']} via {message['channel']}{kind}")
        click.echo(message["body"])
        for name in message["attachments"]:
            click.echo(f"  (attachment: {name})")
    if changes:
        click.echo("\nHistory:")
        emit(changes, "table")


@ticket.command("reply")
@click.argument("ref")
@click.option("--body", "-m", required=True)
@click.option("--status", help="Set the status with the reply (pending, on_hold, solved).")
@click.option("--channel", help="Record a reply given by phone or chat (nothing is emailed).")
@click.option("--attach", "attach", multiple=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--as", "actor", help="The agent (email).")
@format_option
def ticket_reply(ref: str, attach: tuple[str, ...], fmt: str, **options: Any) -> None:
    """Reply publicly; the requester gets it by email with the tracking number in the subject.

    \b
    Example:
      crm ticket reply TK-7F3K-9QWD -m "Fixed, please try again." --status pending --as agent@example.com
    """
    message = _support().tickets.reply(ref, options.pop("body"), attachments=_files(attach), **options)
    _done(fmt, f"reply #{message.id} added", message_record(message))


@ticket.command("note")
@click.argument("ref")
@click.option("--body", "-m", required=True)
@click.option("--as", "actor", help="The agent (email).")
@format_option
def ticket_note(ref: str, body: str, actor: str | None, fmt: str) -> None:
    """Add an internal note (never sent, never counts as a reply).

    \b
    Example:
      crm ticket note TK-7F3K-9QWD -m "Customer is on the legacy plan" --as agent@example.com
    """
    message = _support().tickets.note(ref, body, actor=actor)
    _done(fmt, f"note #{message.id} added", message_record(message))


@ticket.command("message")
@click.argument("ref")
@click.option("--body", "-m", required=True)
@click.option("--channel", default="phone", show_default=True, help="phone, chat, web, email or api.")
@click.option("--as", "actor", help="The agent logging it.")
@format_option
def ticket_message(ref: str, body: str, channel: str, actor: str | None, fmt: str) -> None:
    """Log what the customer said on the phone or in a chat.

    \b
    Example:
      crm ticket message TK-7F3K-9QWD -m "Still broken after the restart" --channel phone
    """
    message = _support().tickets.customer_message(ref, body, channel=channel, actor=actor)
    _done(fmt, f"customer message #{message.id} added", message_record(message))


@ticket.command("assign")
@click.argument("ref")
@click.option("--to", "assignee", help="Agent (id or email); '' unassigns.")
@click.option("--team", help="Group (team name); '' clears.")
@click.option("--as", "actor")
@format_option
def ticket_assign(ref: str, fmt: str, **options: Any) -> None:
    """Assign a ticket to an agent and/or a group.

    \b
    Example:
      crm ticket assign TK-7F3K-9QWD --to agent@example.com --team "Second line"
    """
    found = _support().tickets.assign(ref, **options)
    _done(fmt, f"{found.number} assigned", ticket_row(found))


@ticket.command("status")
@click.argument("ref")
@click.argument("status")
@click.option("--as", "actor")
@format_option
def ticket_status(ref: str, status: str, actor: str | None, fmt: str) -> None:
    """Set the status: open, pending (waiting on the customer), on_hold, solved, closed.

    \b
    Example:
      crm ticket status TK-7F3K-9QWD on_hold
    """
    found = _support().tickets.set_status(ref, status, actor=actor)
    _done(fmt, f"{found.number} is {found.status}", ticket_row(found))


@ticket.command("close")
@click.argument("ref")
@click.option("--as", "actor")
@format_option
def ticket_close(ref: str, actor: str | None, fmt: str) -> None:
    """Close a ticket (solving it first); later mail opens a follow-up.

    \b
    Example:
      crm ticket close TK-7F3K-9QWD
    """
    found = _support().tickets.close(ref, actor=actor)
    _done(fmt, f"{found.number} is closed", ticket_row(found))


@ticket.command("set")
@click.argument("ref")
@click.option("--priority")
@click.option("--category")
@click.option("--product")
@click.option("--subject")
@click.option("--tags", help="Comma-separated; replaces the tags.")
@click.option("--as", "actor")
@format_option
def ticket_set(ref: str, actor: str | None, fmt: str, **options: Any) -> None:
    """Change fields; a new priority or category re-targets the SLA from the original start.

    \b
    Example:
      crm ticket set TK-7F3K-9QWD --priority urgent
    """
    changes = {k: v for k, v in options.items() if v is not None}
    if not changes:
        raise ValidationError({"fields": "give at least one field to change"})
    found = _support().tickets.update(ref, actor=actor, **changes)
    _done(fmt, f"{found.number} updated", ticket_row(found))


@ticket.command("ingest")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--maildir", type=click.Path(file_okay=False), help="Ingest the new mail of a Maildir.")
@format_option
def ticket_ingest(files: tuple[str, ...], maildir: str | None, fmt: str) -> None:
    """Ingest emails (.eml files, '-' for stdin, or a Maildir): new tickets or replies.

    Auto-replies and bounces are recognized and not turned into tickets; the
    same message twice is ingested once.

    \b
    Examples:
      crm ticket ingest message.eml
      crm ticket ingest --maildir /var/mail/support
    """
    support = _support()
    if maildir:
        results = support.mail.poll_maildir(maildir)
    elif len(files) == 1:
        raw = sys.stdin.buffer.read() if files[0] == "-" else Path(files[0]).read_bytes()
        results = [support.mail.ingest(raw, source=files[0])]
    elif files:
        results = support.mail.ingest_many((name, Path(name).read_bytes()) for name in files)
    else:
        raise ValidationError({"files": "give .eml files, '-' or --maildir"})
    emit([{"source": r.source, "action": r.action, "number": r.number, "reason": r.reason} for r in results], fmt,
         ["source", "action", "number", "reason"])  # fmt: skip
    rejected = [r for r in results if r.action == "rejected"]
    if rejected and len(results) == 1:
        raise ValidationError({"email": rejected[0].reason or "rejected"})


@ticket.command("sla")
@click.argument("ref")
@click.option("--explain", is_flag=True, help="Show how each deadline was computed.")
@click.option("--due", "manual", help="Set a metric's deadline by hand: METRIC=ISO-TIME.")
@click.option("--as", "actor")
@format_option
def ticket_sla(ref: str, explain: bool, manual: str | None, actor: str | None, fmt: str) -> None:
    """The SLA metrics of a ticket: target, due, fulfilled, breached, counted and paused time.

    \b
    Examples:
      crm ticket sla TK-7F3K-9QWD --explain
      crm ticket sla TK-7F3K-9QWD --due resolution=2026-02-01T17:00:00+01:00
    """
    tickets = _support().tickets
    if manual:
        metric, sep, when = manual.partition("=")
        if not sep:
            raise ValidationError({"due": "write METRIC=ISO-TIME, e.g. resolution=2026-02-01T17:00:00Z"})
        tickets.set_due(ref, metric.strip(), when.strip(), actor=actor)
    if explain and fmt == "table":
        for line in tickets.explain(ref):
            click.echo(line)
        return
    emit(
        tickets.sla(ref),
        fmt,
        [
            "metric",
            "cycle",
            "state",
            "target_minutes",
            "clock",
            "due_at",
            "fulfilled_at",
            "breached_at",
            "late",
            "elapsed_minutes",
            "paused_minutes",
        ]
        if fmt == "table"
        else None,
    )


# -- crm sla ---------------------------------------------------------------------------------


@click.group()
def sla() -> None:
    """SLA policies and business-hours calendars."""


@sla.group("policy")
def sla_policy() -> None:
    """SLA policies, tried in order; the first whose conditions hold applies."""


def _pairs(items: tuple[str, ...], field: str) -> list[tuple[str, str]]:
    result = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValidationError({field: f"{item!r} is not KEY=VALUE"})
        result.append((key.strip(), value.strip()))
    return result


def policy_record(policy: Any) -> dict[str, Any]:
    """A policy as plain data."""
    from crmcore_ticketing.policies import describe_conditions

    return {
        "id": policy.id, "position": policy.position, "name": policy.name,
        "applies_to": describe_conditions(policy.conditions or {}), "conditions": policy.conditions,
        "targets": policy.targets, "calendar_id": policy.calendar_id, "pause_statuses": policy.pause_statuses,
        "warnings": policy.warnings, "escalations": policy.escalations,
    }  # fmt: skip


@sla_policy.command("add")
@click.argument("name")
@click.option(
    "--target",
    "targets",
    multiple=True,
    required=True,
    help="PRIORITY:METRIC=DURATION (PRIORITY * for all; add @calendar for calendar hours).",
)
@click.option(
    "--if", "conditions", multiple=True, help="KEY=V1,V2 with KEY priority, channel, category, tier, organization."
)
@click.option("--calendar", help="Business calendar the targets count on.")
@click.option("--pause", "pauses", multiple=True, help="Status that pauses the clocks (default: pending and on_hold).")
@click.option("--no-pause", is_flag=True, help="Clocks never pause.")
@click.option("--warn", "warnings", multiple=True, help="Warning point: 30m before the breach, or 80%% of the target.")
@click.option(
    "--escalate",
    "escalations",
    multiple=True,
    help="METRIC:AFTER:ACTION[:TO] with ACTION reassign, raise_priority or notify.",
)
@click.option("--position", type=int, help="Place in the order (default: before the catch-all policy).")
@format_option
def sla_policy_add(name: str, targets: tuple[str, ...], conditions: tuple[str, ...], pauses: tuple[str, ...],
                   no_pause: bool, escalations: tuple[str, ...], fmt: str, **options: Any) -> None:  # fmt: skip
    """Add a policy; overlapping or contradictory ones are refused with the reason.

    \b
    Example:
      crm sla policy add Gold --if tier=gold --calendar "Berlin office" \\
          --target urgent:first_reply=1h --target "*:first_reply=4h" --target "*:resolution=3d" \\
          --warn 30m --warn 80% --escalate first_reply:0m:notify:lead@example.com
    """
    parsed_targets: dict[str, dict[str, str]] = {}
    for key, value in _pairs(targets, "target"):
        priority, sep, metric = key.partition(":")
        if not sep:
            raise ValidationError({"target": f"{key!r} is not PRIORITY:METRIC"})
        parsed_targets.setdefault(priority.strip(), {})[metric.strip()] = value
    parsed_conditions = {k: [v.strip() for v in value.split(",")] for k, value in _pairs(conditions, "if")}
    ladder: dict[str, list[dict[str, str]]] = {}
    for item in escalations:
        parts = item.split(":", 3)
        if len(parts) < 3:
            raise ValidationError({"escalate": f"{item!r} is not METRIC:AFTER:ACTION[:TO]"})
        step = {"after": parts[1], "action": parts[2]}
        if len(parts) == 4:
            step["to"] = parts[3]
        ladder.setdefault(parts[0], []).append(step)
    policy = _support().sla.add_policy(
        name, targets=parsed_targets, conditions=parsed_conditions,
        pause_statuses=[] if no_pause else (list(pauses) or None), escalations=ladder, **options,
    )  # fmt: skip
    emit_record(policy_record(policy), fmt)


@sla_policy.command("list")
@format_option
def sla_policy_list(fmt: str) -> None:
    """The policies in the order they are tried.

    \b
    Example:
      crm sla policy list --format json
    """
    rows = [policy_record(p) for p in _support().sla.policies()]
    emit(rows, fmt, ["position", "name", "applies_to", "calendar_id", "warnings"] if fmt == "table" else None)


@sla_policy.command("show")
@click.argument("ref")
@format_option
def sla_policy_show(ref: str, fmt: str) -> None:
    """One policy with its targets, warnings and escalation ladder.

    \b
    Example:
      crm sla policy show Gold
    """
    emit_record(policy_record(_support().sla.policy(ref)), fmt)


@sla.group("calendar")
def sla_calendar() -> None:
    """Business-hours calendars: weekly hours in a time zone, holidays, closed days."""


def calendar_record(row: Any) -> dict[str, Any]:
    """A calendar as plain data."""
    from crmcore_ticketing.calendar import format_hours

    return {"id": row.id, "name": row.name, "timezone": row.timezone, "hours": format_hours(row.hours),
            "holidays": row.holiday_country, "region": row.holiday_region, "closed_days": row.closed_days}  # fmt: skip


@sla_calendar.command("add")
@click.argument("name")
@click.option("--tz", "timezone", required=True, help="IANA time zone, e.g. Europe/Berlin.")
@click.option("--hours", required=True, help='Weekly hours: "mon-fri 09:00-12:00,13:00-17:00; sat 10:00-14:00".')
@click.option("--holidays", help="Country whose public holidays close the calendar (DE, US, FR, …).")
@click.option("--region", help="Region of that country (BY, CA, …).")
@click.option("--closed", "closed_days", multiple=True, help="An extra closed day (YYYY-MM-DD).")
@format_option
def sla_calendar_add(name: str, fmt: str, **options: Any) -> None:
    """Add a business calendar; one with no open hours or an unknown zone is refused.

    \b
    Example:
      crm sla calendar add "Berlin office" --tz Europe/Berlin \\
          --hours "mon-fri 09:00-12:00,13:00-17:00" --holidays DE --region BE --closed 2026-12-24
    """
    emit_record(calendar_record(_support().sla.add_calendar(name, **options)), fmt)


@sla_calendar.command("list")
@format_option
def sla_calendar_list(fmt: str) -> None:
    """All calendars.

    \b
    Example:
      crm sla calendar list
    """
    emit([calendar_record(c) for c in _support().sla.calendars()], fmt)


@sla_calendar.command("close")
@click.argument("name")
@click.argument("days", nargs=-1, required=True)
@format_option
def sla_calendar_close(name: str, days: tuple[str, ...], fmt: str) -> None:
    """Close a calendar on extra days.

    \b
    Example:
      crm sla calendar close "Berlin office" 2026-12-24 2026-12-31
    """
    row = _support().sla.add_closed_days(name, days)
    _done(fmt, f"{row.name}: closed on {', '.join(row.closed_days)}", calendar_record(row))


@sla_calendar.command("due")
@click.argument("name")
@click.option("--from", "start", required=True, help="Start (ISO 8601).")
@click.option("--add", "duration", required=True, help="Business time to add (30m, 4h, 2d = 48h).")
@format_option
def sla_calendar_due(name: str, start: str, duration: str, fmt: str) -> None:
    """When business time runs out: START plus DURATION on the calendar.

    \b
    Example:
      crm sla calendar due "Berlin office" --from 2026-12-23T15:00:00+01:00 --add 8h
    """
    from crmcore.validation import parse_datetime
    from crmcore_ticketing.calendar import parse_duration

    calendar = _support().sla.calendar(name)
    begin = parse_datetime(start, "from")
    assert begin is not None
    due = calendar.add(begin, parse_duration(duration, "add"))
    _done(
        fmt,
        f"{due.astimezone(calendar.zone).isoformat()} ({due.isoformat()})",
        {"calendar": name, "from": begin, "add": duration, "due_at": due, "due_local": due.astimezone(calendar.zone)},
    )


# -- crm kb -----------------------------------------------------------------------------------


@click.group()
def kb() -> None:
    """The knowledge base: articles and FAQ, drafts, search, suggestions."""


def article_record(article: Any) -> dict[str, Any]:
    """An article as plain data."""
    return {"id": article.id, "slug": article.slug, "title": article.title, "kind": article.kind,
            "status": article.status, "version": article.version, "helpful_yes": article.helpful_yes,
            "helpful_no": article.helpful_no, "updated_at": article.updated_at}  # fmt: skip


@kb.command("add")
@click.option("--title", required=True, help="Title (the question, for a FAQ entry).")
@click.option("--body", help="Text (the answer); or --file.")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), help="Read the text from a file.")
@click.option("--kind", default="article", show_default=True, help="article or faq.")
@click.option("--category")
@click.option("--slug")
@click.option("--publish", is_flag=True, help="Publish at once (default: draft).")
@click.option("--as", "actor")
@format_option
def kb_add(body: str | None, path: str | None, fmt: str, **options: Any) -> None:
    """Add an article or FAQ entry (a draft unless --publish).

    \b
    Example:
      crm kb add --title "Reset your password" --file reset.md --category Accounts --publish
    """
    text = Path(path).read_text(encoding="utf-8") if path else body
    emit_record(article_record(_support().kb.add(options.pop("title"), text or "", **options)), fmt)


@kb.command("publish")
@click.argument("ref")
@click.option("--draft", is_flag=True, help="Take it back to draft instead.")
@format_option
def kb_publish(ref: str, draft: bool, fmt: str) -> None:
    """Publish an article (its public page appears) or take it back to draft.

    \b
    Example:
      crm kb publish reset-your-password
    """
    article = _support().kb.publish(ref, published=not draft)
    _done(fmt, f"{article.slug} is {article.status}", article_record(article))


@kb.command("search")
@click.argument("query")
@click.option("--drafts", is_flag=True, help="Include drafts.")
@click.option("--limit", default=10, show_default=True, type=int)
@format_option
def kb_search(query: str, drafts: bool, limit: int, fmt: str) -> None:
    """Full-text search (the database's own engine), best match first.

    \b
    Example:
      crm kb search "password reset"
    """
    hits = _support().kb.search(query, limit=limit, include_drafts=drafts)
    emit([{**article_record(h.article), "score": round(h.score, 4)} for h in hits], fmt,
         ["slug", "title", "kind", "status", "score"] if fmt == "table" else None)  # fmt: skip


@kb.command("suggest")
@click.argument("ticket_ref")
@format_option
def kb_suggest(ticket_ref: str, fmt: str) -> None:
    """Published articles that may answer a ticket.

    \b
    Example:
      crm kb suggest TK-7F3K-9QWD
    """
    hits = _support().kb.suggest(ticket_ref)
    emit([{**article_record(h.article), "score": round(h.score, 4)} for h in hits], fmt,
         ["slug", "title", "score"] if fmt == "table" else None)  # fmt: skip


@kb.command("link")
@click.argument("ticket_ref")
@click.argument("ref")
def kb_link(ticket_ref: str, ref: str) -> None:
    """Record that an article was used on a ticket.

    \b
    Example:
      crm kb link TK-7F3K-9QWD reset-your-password
    """
    _support().tickets.link_article(ticket_ref, ref)
    click.echo("linked")


@kb.command("show")
@click.argument("ref")
@format_option
def kb_show(ref: str, fmt: str) -> None:
    """Show an article with its text and versions.

    \b
    Example:
      crm kb show reset-your-password --format json
    """
    support = _support()
    article = support.kb.get(ref)
    record = {**article_record(article), "category": support.kb.category_name(article), "body": article.body,
              "versions": [v.version for v in support.kb.versions(ref)],
              "tickets": support.kb.tickets_using(ref)}  # fmt: skip
    emit_record(record, fmt)


@kb.command("list")
@click.option("--status", help="draft or published.")
@click.option("--kind", help="article or faq.")
@format_option
def kb_list(fmt: str, **options: Any) -> None:
    """List articles by title.

    \b
    Example:
      crm kb list --kind faq --status published
    """
    emit([article_record(a) for a in _support().kb.list(**options)], fmt)


# -- crm contract -------------------------------------------------------------------------------


@click.group()
def contract() -> None:
    """Service contracts: tier, product, dates, hours of cover."""


def contract_record(row: Any) -> dict[str, Any]:
    """A contract as plain data, with whether it is in force today."""
    from datetime import date

    today = date.today()
    active = row.starts_on <= today and (row.ends_on is None or row.ends_on >= today)
    return {"id": row.id, "contact_id": row.contact_id, "organization_id": row.organization_id, "tier": row.tier,
            "product": row.product, "starts_on": row.starts_on, "ends_on": row.ends_on,
            "calendar_id": row.calendar_id, "reference": row.reference, "active": active}  # fmt: skip


@contract.command("add")
@click.option("--customer", "contact", help="The customer (contact id or email).")
@click.option("--organization", type=int, help="Or an organization id.")
@click.option("--tier", required=True, help="The tier SLA policies match on (gold, silver, …).")
@click.option("--from", "starts_on", required=True, help="First day (YYYY-MM-DD).")
@click.option("--until", "ends_on", help="Last day (YYYY-MM-DD; open-ended when absent).")
@click.option("--product")
@click.option("--calendar", help="Hours of cover: the calendar business-hours targets count on.")
@click.option("--reference")
@format_option
def contract_add(fmt: str, **options: Any) -> None:
    """Record a service contract.

    \b
    Example:
      crm contract add --customer ada@example.com --tier gold --from 2026-01-01 --until 2026-12-31
    """
    emit_record(contract_record(_support().contracts.add(**options)), fmt)


@contract.command("list")
@click.option("--customer", help="Only this customer's.")
@click.option("--active-on", help="Only those in force on this day (YYYY-MM-DD).")
@format_option
def contract_list(fmt: str, **options: Any) -> None:
    """List contracts, newest first.

    \b
    Example:
      crm contract list --customer ada@example.com --format json
    """
    emit([contract_record(c) for c in _support().contracts.list(**options)], fmt)


COMMANDS = (ticket, sla, kb, contract)

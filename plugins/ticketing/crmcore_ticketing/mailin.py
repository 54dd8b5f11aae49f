"""Email in: parse a message (Python's ``email`` package), recognize auto-replies and bounces,
thread it onto its ticket or open a new one; ingest files and poll a Maildir.

Threading: the tracking number in the subject wins; otherwise ``In-Reply-To``
and ``References`` are matched against the Message-IDs of the ticket thread
(incoming messages and our replies). The same Message-ID twice is one message,
so a second run over the same mail (a crash between commit and moving the
file) changes nothing.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Sequence
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select

from crmcore.db import gc_paused
from crmcore.errors import ValidationError
from crmcore.mail import Attachment as FileData
from crmcore.mail import html_to_text
from crmcore.services.base import Service
from crmcore_ticketing import numbers
from crmcore_ticketing.models import Message as ThreadMessage
from crmcore_ticketing.models import Status, Ticket

if TYPE_CHECKING:
    from crmcore.context import HookContext

log = logging.getLogger("crmcore.ticketing.mail")

POLL_HANDLER = "ticketing.poll_maildir"
_MSGID = re.compile(r"<[^<>\s]+>")
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[\s_-]*(reply|response|antwort)|out of (the )?office|ooo\b|abwesenheits?(notiz|meldung)"
    r"|r[ée]ponse automatique|absence|autosvar|automatisk svar|vacation)",
    re.IGNORECASE,
)
_BOUNCE_SENDERS = ("mailer-daemon", "postmaster")
_REPLY_MARKERS = (
    re.compile(r"^\s*On\b.{0,300}\bwrote:\s*$", re.IGNORECASE | re.DOTALL),
    re.compile(r"^\s*Am\b.{0,300}\bschrieb\b.{0,200}:\s*$", re.IGNORECASE | re.DOTALL),
    re.compile(r"^\s*Le\b.{0,300}\ba écrit\s*:\s*$", re.IGNORECASE | re.DOTALL),
    re.compile(r"^\s*-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine)\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^\s*_{10,}\s*$"),
)
_OUTLOOK_HEADER = re.compile(r"^\s*(From|De|Von):\s.+", re.IGNORECASE)
_OUTLOOK_NEXT = re.compile(r"^\s*(Sent|Date|Envoyé|Gesendet):\s.+", re.IGNORECASE)


@attrs.frozen(kw_only=True)
class Incoming:
    """A parsed incoming email."""

    message_id: str
    sender_email: str
    sender_name: str | None
    subject: str
    text: str
    #: The new part of the text, quoted history removed.
    reply_text: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    attachments: tuple[FileData, ...]
    #: ``"auto-reply: <why>"`` or ``"bounce: <why>"`` for machine mail, else None.
    automatic: str | None = None
    #: For bounces: the recipient that failed and the server's words.
    bounce_detail: str | None = None


@attrs.frozen(kw_only=True)
class IngestResult:
    """What ingesting one message did."""

    #: ``created``, ``appended``, ``reopened``, ``follow_up``, ``duplicate``, ``ignored`` or ``rejected``.
    action: str
    ticket_id: int | None = None
    number: str | None = None
    reason: str | None = None
    source: str | None = None


# -- parsing ------------------------------------------------------------------------------


def _decode(value: Any) -> str:
    """Decode RFC 2047 encoded words (and raw 8-bit text); broken encodings are replaced, never raised."""
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        text = value if isinstance(value, str) else str(value)
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _header(message: Message, name: str) -> str:
    """A header as one line of text."""
    return " ".join(_decode(message.get(name)).split())


def _part_text(part: Message) -> str:
    """A text part decoded with its charset (unknown charsets fall back to UTF-8, then Latin-1)."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    for candidate in (charset, "utf-8"):
        try:
            return payload.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("latin-1")


def _disposition(part: Message) -> str:
    return str(part.get("Content-Disposition") or "").split(";")[0].strip().lower()


def _body_part(message: Message) -> Message | None:
    """The text of a message: its first text/plain part, else its first text/html part."""
    plain = html = None
    for part in message.walk():
        if part.is_multipart() or _disposition(part) == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/plain" and plain is None:
            plain = part
        elif kind == "text/html" and html is None:
            html = part
    return plain or html


def strip_quoted(text: str) -> str:
    """The new text of a reply: cut at the quoted history ("On … wrote:", "-----Original Message-----")."""
    lines = text.replace("\r\n", "\n").split("\n")
    cut = len(lines)
    for index, line in enumerate(lines):
        pair = line + " " + lines[index + 1] if index + 1 < len(lines) else line
        if any(m.match(line) for m in _REPLY_MARKERS) or (
            index + 1 < len(lines) and _REPLY_MARKERS[0].match(pair) and not line.startswith(">")
        ):
            cut = index
            break
        if _OUTLOOK_HEADER.match(line) and index + 1 < len(lines) and _OUTLOOK_NEXT.match(lines[index + 1]):
            cut = index
            break
        if line.startswith(">") and all(not l.strip() or l.startswith(">") for l in lines[index:]):  # noqa: E741
            cut = index
            break
    kept = "\n".join(lines[:cut]).rstrip()
    return kept if kept.strip() else text.strip()


def _ids(value: str) -> tuple[str, ...]:
    return tuple(_MSGID.findall(value or ""))


def parse(raw: bytes, *, max_bytes: int | None = None) -> Incoming:
    """Parse an RFC 5322 message; a ValidationError says why a malformed one is refused."""
    if not isinstance(raw, bytes | bytearray) or not raw.strip():
        raise ValidationError({"email": "the message is empty"})
    if max_bytes is not None and len(raw) > max_bytes:
        raise ValidationError({"email": f"the message is {len(raw):,} bytes, over the {max_bytes:,}-byte limit"})
    # compat32 parses an order of magnitude faster than the default policy; headers are decoded on demand
    message = email.message_from_bytes(bytes(raw), policy=email.policy.compat32)
    raw_from = str(message.get("From") or "")
    addresses = [a for a in getaddresses([raw_from]) if "@" in a[1]] if raw_from else []
    if not addresses:
        raise ValidationError({"email": "malformed message: no sender address in From"})
    sender_name, sender_email = _decode(addresses[0][0]), addresses[0][1]
    subject = _header(message, "Subject")[:255] or "(no subject)"
    message_id = (_ids(_header(message, "Message-ID")) or (None,))[0]
    if message_id is None:  # a stable id from the content, so a second ingest is still recognized
        message_id = f"<{hashlib.sha256(bytes(raw)).hexdigest()[:40]}@ticketing.invalid>"
    automatic, detail = _machine_mail(message, sender_email, subject)
    body = _body_part(message)
    text = ""
    if body is not None:
        text = _part_text(body)
        if body.get_content_type() == "text/html":
            text = html_to_text(text)
    text = text.replace("\x00", "").strip()
    files: list[FileData] = []
    if not automatic:
        for index, part in enumerate(message.walk(), start=1):
            if part.is_multipart() or part is body:
                continue
            name = part.get_filename()
            if _disposition(part) != "attachment" and name is None:
                continue
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                files.append(FileData(filename=_decode(name) or f"attachment-{index}",
                                      content_type=part.get_content_type(), data=data))  # fmt: skip
    return Incoming(
        message_id=message_id[:255], sender_email=sender_email.strip(), sender_name=sender_name.strip() or None,
        subject=subject, text=text or "(no text)", reply_text=strip_quoted(text) if text else "(no text)",
        in_reply_to=_ids(_header(message, "In-Reply-To")), references=_ids(_header(message, "References")),
        attachments=tuple(files), automatic=automatic, bounce_detail=detail,
    )  # fmt: skip


def _machine_mail(message: Message, sender: str, subject: str) -> tuple[str | None, str | None]:
    """Recognize bounces (RFC 3464 reports, MAILER-DAEMON) and auto-replies (RFC 3834, vacation)."""
    content_type = message.get_content_type()
    local = sender.rpartition("@")[0].lower()
    if content_type == "multipart/report" and message.get_param("report-type") == "delivery-status":
        return "bounce: delivery status notification", _bounce_detail(message)
    if local in _BOUNCE_SENDERS or (_header(message, "Return-Path").strip() == "<>" and "delivery" in subject.lower()):
        return f"bounce: from {sender}", _bounce_detail(message)
    auto = _header(message, "Auto-Submitted").lower()
    if auto and auto != "no":
        return f"auto-reply: Auto-Submitted: {auto}", None
    for name in ("X-Autoreply", "X-Autorespond", "X-Autogenerated", "X-AutoReply-From"):
        if _header(message, name):
            return f"auto-reply: {name} header", None
    if _header(message, "X-Auto-Response-Suppress").lower() in ("all", "oof") and _AUTO_SUBJECT.match(subject):
        return "auto-reply: Outlook out-of-office", None
    precedence = _header(message, "Precedence").lower()
    if precedence in ("auto_reply", "bulk", "junk"):
        return f"auto-reply: Precedence: {precedence}", None
    if _AUTO_SUBJECT.match(subject):
        return f"auto-reply: subject {subject[:60]!r}", None
    return None, None


def _bounce_detail(message: Message) -> str | None:
    """``recipient: status diagnostic`` from a delivery-status part, when there is one."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        text = ""
        payload = part.get_payload()
        if isinstance(payload, list):
            text = "\n".join(str(p) for p in payload)
        elif isinstance(payload, str):
            text = payload
        recipient = re.search(r"^Final-Recipient:\s*[^;]*;\s*(\S+)", text, re.IGNORECASE | re.MULTILINE)
        status = re.search(r"^Status:\s*(\S+)", text, re.IGNORECASE | re.MULTILINE)
        diagnostic = re.search(r"^Diagnostic-Code:\s*[^;]*;\s*(.+)$", text, re.IGNORECASE | re.MULTILINE)
        return " ".join(filter(None, [
            recipient.group(1) + ":" if recipient else None, status.group(1) if status else None,
            diagnostic.group(1).strip() if diagnostic else None,
        ]))[:400] or None  # fmt: skip
    return None


def _referenced_ids(message: Message) -> tuple[str, ...]:
    """Message-IDs an embedded original (in a bounce) refers to."""
    found: list[str] = []
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            found.extend(_MSGID.findall(str(part)))
    return tuple(found)


# -- ingesting ---------------------------------------------------------------------------


@attrs.define
class Lookups:
    """What a batch of messages looks up, read with one query per kind and kept current as the batch writes."""

    #: Message-IDs already on a thread (a second copy is a duplicate).
    seen: set[str]
    #: Message-ID -> ticket id, for threading by ``In-Reply-To`` and ``References``.
    threads: dict[str, int]
    #: Tracking number -> ticket id.
    numbers: dict[str, int]
    #: The tickets read up front, held so the session's (weak) identity map keeps them.
    tickets: list[Ticket] = attrs.field(factory=list)

    @classmethod
    def load(cls, ctx: HookContext, batch: Sequence[Incoming]) -> Lookups:
        """Read the threads, tickets, SLA runs and requesters the messages of *batch* refer to."""
        from crmcore_ticketing.tickets import engine, preload_requesters, reserve_numbers

        prefix = ctx.crm.plugin_setting("ticketing", "tracking_prefix")
        own = {m.message_id for m in batch}
        ids = sorted(own | {i for m in batch for i in (*m.in_reply_to, *m.references[-50:])})
        threads: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            query = select(ThreadMessage.message_id, ThreadMessage.ticket_id).where(
                ThreadMessage.message_id.in_(ids[start : start + 500]))  # fmt: skip
            threads.update((mid, ticket_id) for mid, ticket_id in ctx.session.execute(query) if mid)
        wanted = sorted({n for n in (numbers.find(m.subject, prefix) for m in batch) if n})
        found: dict[str, int] = {}
        for start in range(0, len(wanted), 500):
            query = select(Ticket.number, Ticket.id).where(Ticket.number.in_(wanted[start : start + 500]))
            found.update((number, ticket_id) for number, ticket_id in ctx.session.execute(query))
        ticket_ids = sorted({*threads.values(), *found.values()})
        tickets: list[Ticket] = []
        for start in range(0, len(ticket_ids), 500):  # into the session, so each message finds its ticket there
            tickets.extend(ctx.session.scalars(select(Ticket).where(Ticket.id.in_(ticket_ids[start : start + 500]))))
        engine(ctx).preload(tickets)
        preload_requesters(ctx, [m.sender_email for m in batch if not m.automatic])
        reserve_numbers(ctx, min(len(batch), 500))
        return cls(seen=own & set(threads), threads=threads, numbers=found, tickets=tickets)

    def learn(self, incoming: Incoming, result: IngestResult) -> None:
        """Remember what ingesting *incoming* stored, for the messages after it."""
        if result.ticket_id is None or result.action in ("duplicate", "rejected"):
            return
        self.seen.add(incoming.message_id)
        self.threads[incoming.message_id] = result.ticket_id
        if result.number:
            self.numbers[result.number] = result.ticket_id


def find_thread(ctx: HookContext, incoming: Incoming, lookups: Lookups | None = None) -> Ticket | None:
    """The ticket an incoming message belongs to: tracking number in the subject, else its references."""
    from crmcore.crm import CRM

    crm: CRM = ctx.crm
    number = numbers.find(incoming.subject, crm.plugin_setting("ticketing", "tracking_prefix"))
    ids = [*incoming.in_reply_to, *reversed(incoming.references)][:50]
    if lookups is not None:
        ticket_id = lookups.numbers.get(number) if number else None
        if ticket_id is None:
            ticket_id = next((lookups.threads[i] for i in ids if i in lookups.threads), None)
        return ctx.session.get(Ticket, ticket_id) if ticket_id is not None else None
    if number:
        ticket: Ticket | None = ctx.first(Ticket, Ticket.number == number)
        if ticket is not None:
            return ticket
    if ids:
        row = ctx.session.execute(
            select(ThreadMessage.ticket_id).where(ThreadMessage.message_id.in_(ids)).limit(1)
        ).first()
        if row is not None:
            return ctx.session.get(Ticket, row[0])
    return None


def ingest_in(
    ctx: HookContext, incoming: Incoming, raw: bytes | None = None, lookups: Lookups | None = None
) -> IngestResult:
    """Turn one parsed message into a new ticket or a message on its ticket, inside *ctx*.

    A batch passes its *lookups* (what it read up front); alone, each lookup is a query.
    """
    from crmcore_ticketing import tickets as service

    if lookups is not None:
        seen = incoming.message_id in lookups.seen
    else:
        query = select(ThreadMessage.id).where(ThreadMessage.message_id == incoming.message_id)
        seen = ctx.session.execute(query).first() is not None
    if seen:
        return IngestResult(action="duplicate", reason=f"{incoming.message_id} was ingested before")
    if incoming.automatic:
        ticket = None
        if incoming.automatic.startswith("bounce"):
            refs = incoming
            if raw is not None:
                embedded = _referenced_ids(email.message_from_bytes(raw, policy=email.policy.compat32))
                refs = attrs.evolve(incoming, references=(*incoming.references, *embedded))
            ticket = find_thread(ctx, refs)  # an embedded original may name any thread: ask the database
            if ticket is not None:
                service.add_message_in(ctx, ticket, author_type="system", public=False, channel="email",
                                       body=f"Delivery failed: {incoming.bounce_detail or incoming.subject}",
                                       message_id=incoming.message_id)  # fmt: skip
        return IngestResult(action="ignored", reason=incoming.automatic, ticket_id=ticket.id if ticket else None,
                            number=ticket.number if ticket else None)  # fmt: skip
    ticket = find_thread(ctx, incoming, lookups)
    requester = service.resolve_requester(ctx, incoming.sender_email, incoming.sender_name)
    if ticket is not None:
        action = "appended"
        if ticket.status == Status.CLOSED.value:
            if ctx.crm.plugin_setting("ticketing", "reply_to_closed") == "reopen":
                service.reopen_closed_in(ctx, ticket)
                action = "reopened"
            else:
                follow = service.open_in(
                    ctx, subject=incoming.subject, body=incoming.reply_text, requester=requester, channel="email",
                    priority=ticket.priority, category=ticket.category, product=ticket.product,
                    attachments=incoming.attachments, message_id=incoming.message_id, follow_up_of=ticket,
                )  # fmt: skip
                service.acknowledge(ctx, follow)
                if lookups is not None:
                    lookups.tickets.append(follow)
                return IngestResult(action="follow_up", ticket_id=follow.id, number=follow.number,
                                    reason=f"{ticket.number} is closed")  # fmt: skip
        elif ticket.status == Status.SOLVED.value:
            action = "reopened"
        service.add_message_in(ctx, ticket, author_type="customer", body=incoming.reply_text, public=True,
                               channel="email", contact_id=requester.id, attachments=incoming.attachments,
                               message_id=incoming.message_id)  # fmt: skip
        return IngestResult(action=action, ticket_id=ticket.id, number=ticket.number)
    created = service.open_in(
        ctx,
        subject=incoming.subject,
        body=incoming.reply_text,
        requester=requester,
        channel="email",
        attachments=incoming.attachments,
        message_id=incoming.message_id,
    )
    service.acknowledge(ctx, created)
    if lookups is not None:
        lookups.tickets.append(created)
    return IngestResult(action="created", ticket_id=created.id, number=created.number)


class MailIn(Service):
    """Incoming email: ``ticketing(crm).mail``."""

    def parse(self, raw: bytes) -> Incoming:
        """Parse *raw* with the size limit of the settings."""
        return parse(raw, max_bytes=int(self.crm.plugin_setting("ticketing", "max_message_bytes")))

    def ingest(self, raw: bytes, *, source: str | None = None) -> IngestResult:
        """Ingest one message in one transaction; malformed or oversized mail raises, writing nothing."""
        incoming = self.parse(raw)
        from crmcore_ticketing.attachments import check_sizes

        check_sizes(self.crm, incoming.attachments)
        with self.crm.transaction() as ctx:
            return attrs.evolve(ingest_in(ctx, incoming, bytes(raw)), source=source)

    def ingest_many(self, items: Iterable[tuple[str, bytes]]) -> list[IngestResult]:
        """Ingest many messages (a mailbox poll) in one transaction, each in a savepoint.

        Messages are parsed before the transaction begins; what the batch refers
        to (threads, tickets, their SLA runs, requesters) is read with one query
        per kind; history lines and SLA timers are written with one executemany
        each at the end. A malformed or refused message is ``rejected`` with its
        reason and rolls back alone; the others land. Running the same messages
        again changes nothing (each is a ``duplicate``).
        """
        from crmcore_ticketing.attachments import check_sizes
        from crmcore_ticketing.batch import Deferred
        from crmcore_ticketing.tickets import FREE_NUMBERS, REQUESTERS, engine

        parsed: list[tuple[str, bytes, Incoming | ValidationError]] = []
        for source, raw in items:
            try:
                incoming = self.parse(raw)
                check_sizes(self.crm, incoming.attachments)
                parsed.append((source, raw, incoming))
            except ValidationError as exc:
                parsed.append((source, raw, exc))
        results: list[IngestResult] = []
        with gc_paused(), self.crm.transaction() as ctx, Deferred.collecting(ctx) as deferred:
            lookups = Lookups.load(ctx, [item for _s, _r, item in parsed if isinstance(item, Incoming)])
            for source, raw, item in parsed:
                if isinstance(item, ValidationError):
                    results.append(IngestResult(action="rejected", reason=str(item), source=source))
                    continue
                mark = deferred.mark()
                try:
                    with ctx.session.begin_nested():
                        result = ingest_in(ctx, item, raw, lookups)
                except ValidationError as exc:
                    deferred.rollback(mark)
                    engine(ctx).forget()  # runs loaded inside the rolled-back savepoint
                    ctx.cache[REQUESTERS] = {}  # a lead captured there is gone
                    results.append(IngestResult(action="rejected", reason=str(exc), source=source))
                    continue
                lookups.learn(item, result)
                results.append(attrs.evolve(result, source=source))
            for key in (REQUESTERS, FREE_NUMBERS):  # the batch's memos end with it
                ctx.cache.pop(key, None)
        return results

    def poll_maildir(self, path: str | os.PathLike[str] | None = None, *, limit: int = 500) -> list[IngestResult]:
        """Ingest the messages in a Maildir's ``new/``; move each to ``cur/`` (or ``.Rejected``) after commit.

        A crash between the commit and the move leaves files in ``new/``; the
        next poll finds their Message-IDs already ingested and just moves them.
        """
        folder = Path(path or self.crm.plugin_setting("ticketing", "maildir") or "")
        if not str(folder) or not (folder / "new").is_dir():
            if path is not None:
                raise ValidationError({"maildir": f"{folder} is not a Maildir (it has no new/ folder)"})
            return []
        names = sorted(n for n in os.listdir(folder / "new") if not n.startswith("."))[:limit]
        items = []
        for name in names:
            try:
                items.append((name, (folder / "new" / name).read_bytes()))
            except OSError as exc:
                log.warning("maildir %s: cannot read %s: %s", folder, name, exc)
        with self.crm.transaction() as ctx:
            results = self.ingest_many(items)
            ctx.on_commit(lambda: _move_done(folder, results))
        return results


def _move_done(folder: Path, results: list[IngestResult]) -> None:
    for result in results:
        if result.source is None:
            continue
        source = folder / "new" / result.source
        if result.action == "rejected":
            target_dir = folder / ".Rejected" / "cur"
            for sub in ("cur", "new", "tmp"):
                (folder / ".Rejected" / sub).mkdir(parents=True, exist_ok=True)
            log.warning("maildir %s: rejected %s: %s", folder, result.source, result.reason)
        else:
            target_dir = folder / "cur"
            target_dir.mkdir(exist_ok=True)
        name = result.source if ":2," in result.source else f"{result.source}:2,S"
        with contextlib.suppress(FileNotFoundError):  # moved by an earlier poll
            source.rename(target_dir / name)


def poll_job(call: Any) -> None:
    """The ``ticketing.poll_maildir`` handler: poll the configured Maildir, if any."""
    results = MailIn(call.crm).poll_maildir()
    if results:
        counts: dict[str, int] = {}
        for result in results:
            counts[result.action] = counts.get(result.action, 0) + 1
        log.info("maildir poll: %s", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))

"""Sending a campaign: a streaming fill, then delivery batches over one SMTP connection each.

**Fill** (job ``email_marketing.fill``): one chunk of the segment's contacts
per job, in contact-id order. Each contact becomes one recipient row, unique
per campaign and contact (the per-recipient idempotency key): either
``queued`` with its message rendered (subject, HTML; the MIME is built at
delivery), or ``skipped`` with the reason. Queued rows are cut into batches,
each a delivery job; the chunk, its batches and the next chunk's job commit
with the job's done mark, so a crash repeats a chunk harmlessly and memory
stays flat whatever the segment's size.

**Delivery** (job ``email_marketing.deliver``): one batch, one connection,
in groups of ``commit_every`` messages. Before a group goes out its rows are
marked ``sending`` in one commit; their outcomes (``sent``, refused, deferred)
are written with the next group's mark. A worker that dies mid-batch leaves at
most one group ``sending``: when the batch runs again those rows become
``unknown`` (some may have left) and are never resent, so nobody gets two
copies. Temporary refusals (4xx) are retried later with backoff; permanent ones
(5xx) are recorded per recipient, and unknown mailboxes are suppressed.

**Rate limit**: batches are timers spaced ``batch_size / rate_limit`` seconds
apart and each batch paces itself, so the limit holds with any number of workers.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, bindparam, func, insert, select, update

from crmcore.mail import BatchSender, MailMessage, OutgoingMail, PermanentMailError, TemporaryMailError
from crmcore.models import Contact
from crmcore.registry import JobHandler
from crmcore_email_marketing.campaigns import (
    AB_HANDLER,
    DELIVER_HANDLER,
    FILL_HANDLER,
    START_HANDLER,
    compile_template,
    custom_field_names,
    page_context,
    recipient_due,
    resolve_segment,
    setting,
    start_sending,
)
from crmcore_email_marketing.events import CampaignMessageSent
from crmcore_email_marketing.models import (
    Campaign,
    CampaignState,
    Recipient,
    RecipientStatus,
    Suppression,
    Template,
    Variant,
)
from crmcore_email_marketing.rendering import CompiledTemplate, TemplateProblem, contact_context, rewrite_links
from crmcore_email_marketing.tokens import open_pixel_url, unsubscribe_url

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM
    from crmcore.registry import JobCall

log = logging.getLogger("crmcore_email_marketing")

RELEASE_HANDLER = "email_marketing.ab_release"
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def registrations() -> list[JobHandler]:
    """The job handlers of campaign sending."""
    return [
        JobHandler(name=START_HANDLER, func=start_job, help="Start a scheduled campaign."),
        JobHandler(name=FILL_HANDLER, func=fill_job, help="Render and queue one chunk of a campaign's recipients."),
        JobHandler(
            name=DELIVER_HANDLER,
            func=deliver_job,
            max_attempts=12,
            backoff=timedelta(seconds=30),
            help="Deliver one batch of campaign messages over one SMTP connection.",
        ),
        JobHandler(name=AB_HANDLER, func=ab_decide_job, help="Pick the A/B test's winning subject."),
        JobHandler(name=RELEASE_HANDLER, func=release_job, help="Queue held recipients with the winning subject."),
    ]


# -- start -------------------------------------------------------------------------


def start_job(call: JobCall) -> None:
    """A scheduled campaign's time came: start it, or put it back to draft saying why."""
    from crmcore.errors import CRMError

    crm = call.crm
    with crm.transaction() as ctx:
        campaign = ctx.session.get(Campaign, call.payload["campaign_id"])
        if campaign is None or campaign.state != CampaignState.SCHEDULED:
            return
        try:
            with ctx.session.begin_nested():
                start_sending(ctx, campaign)
        except CRMError as exc:
            campaign.state = CampaignState.DRAFT
            campaign.updated_at = ctx.now
            ctx.audit("campaign.start_failed", "email_marketing_campaign", campaign.id, {"error": str(exc)})
            log.error("campaign %s could not start: %s", campaign.name, exc)


# -- fill ----------------------------------------------------------------------------


def _hash100(contact_id: int) -> int:
    return (contact_id * 2654435761 % 2**32) % 100


def fill_job(call: JobCall) -> None:
    """Render and queue the next chunk of the segment (see the module's description)."""
    crm = call.crm
    with crm.transaction() as ctx:
        campaign = ctx.session.get(Campaign, call.payload["campaign_id"])
        if campaign is None or campaign.state != CampaignState.SENDING:
            return
        if campaign.generation != call.payload["generation"] or campaign.fill_done:
            return
        fill_chunk(ctx, campaign)


def fill_chunk(ctx: HookContext, campaign: Campaign) -> int:
    """Render and queue one chunk of *campaign*'s recipients; returns how many contacts it took."""
    crm = ctx.crm
    template = ctx.session.get(Template, campaign.template_id)
    assert template is not None
    compiled = compile_template(ctx, template, campaign)
    fields = custom_field_names(ctx)
    chunk_size = int(setting(crm, "fill_chunk"))
    segment = resolve_segment(ctx, campaign.segment).subquery()
    segment_ids = select(next(iter(segment.c)))
    # opt-in: only holders of marketing consent for email; opt-out: everyone but those who withdrew it
    if setting(crm, "consent_regime") == "opt_in":
        allowed = Contact.id.in_(crm.consent.consented("marketing", "email"))
    else:
        allowed = Contact.id.not_in(withdrawn_query())
    columns: list[Any] = [*FILL_COLUMNS, Suppression.reason.label("suppressed"), allowed.label("consented")]
    query = (
        select(*columns)
        .outerjoin(Suppression, Suppression.email == Contact.email_normalized)
        .where(Contact.id.in_(segment_ids), Contact.id > campaign.fill_cursor)
        .order_by(Contact.id)
        .limit(chunk_size)
    )
    rows = ctx.session.execute(query).all()
    opt_in = setting(crm, "consent_regime") == "opt_in"
    labels = sorted(ctx.session.scalars(select(Variant.label).where(Variant.campaign_id == campaign.id)))
    testing = bool(campaign.ab_metric and labels and campaign.ab_winner is None)
    zone = crm.settings.timezone
    campaign_id, winner = campaign.id, campaign.ab_winner
    records: list[dict[str, Any]] = []
    for contact in rows:
        suppressed = contact.suppressed
        consented = bool(contact.consented)
        # every row has every key: one executemany of the plain table, no ORM bookkeeping per row
        record: dict[str, Any] = {
            "campaign_id": campaign_id, "contact_id": contact.id, "email": contact.email, "attempts": 0,
            "opens": 0, "clicks": 0, "status": RecipientStatus.SKIPPED, "reason": None, "subject": None,
            "html": None, "text": None, "variant": None, "due_at": None, "batch": None,
        }  # fmt: skip
        records.append(record)
        reason = _skip_reason(contact, suppressed, consented, opt_in)
        if reason:
            record["reason"] = reason
            continue
        variant: str | None = None
        held = False
        if testing:
            if _hash100(contact.id) < campaign.ab_sample_percent:
                variant = labels[(contact.id * 2654435761 // 100) % len(labels)]
            else:
                held = True
        elif winner:
            variant = winner
        try:
            rendered = render_for(crm, compiled, contact, fields, variant=variant, subject=not held)
        except TemplateProblem as exc:
            record["reason"] = "template error: " + "; ".join(exc.errors.values())[:480]
            continue
        record.update(rendered, variant=variant, due_at=recipient_due(campaign, contact, zone, ctx.now))
        record["status"] = RecipientStatus.HELD if held else RecipientStatus.QUEUED
    if records:
        assign_batches(ctx, campaign, [r for r in records if r["status"] == RecipientStatus.QUEUED])
        ctx.session.execute(insert(Recipient.__table__), records)
    if rows:
        campaign.fill_cursor = rows[-1].id
    if len(rows) == chunk_size:
        ctx.enqueue(FILL_HANDLER, {"campaign_id": campaign.id, "generation": campaign.generation},
                    key=f"{FILL_HANDLER}:{campaign.id}:{campaign.generation}:{campaign.fill_cursor}")  # fmt: skip
    else:
        campaign.fill_done = True
        if testing:
            wait = timedelta(minutes=campaign.ab_wait_minutes)
            ctx.enqueue(AB_HANDLER, {"campaign_id": campaign.id}, key=f"{AB_HANDLER}:{campaign.id}", delay=wait)
        maybe_finish(ctx, campaign)
    return len(rows)


def withdrawn_query() -> Select[tuple[int]]:
    """Ids of contacts who withdrew marketing consent for email (what the opt-out regime leaves out)."""
    from crmcore.models import Consent

    return select(Consent.contact_id).where(
        Consent.purpose == "marketing", Consent.channel == "email", Consent.status == "withdrawn"
    )


def _skip_reason(contact: Contact, suppressed: str | None, consented: bool, opt_in_regime: bool) -> str | None:
    if contact.erased_at is not None or contact.merged_into_id is not None:
        return "contact erased" if contact.erased_at is not None else "contact merged into another"
    if not contact.email:
        return "no email address"
    if not _ADDRESS.match(contact.email):
        return f"invalid email address {contact.email!r}"
    if suppressed:
        return f"suppressed ({suppressed})"
    if contact.do_not_contact:
        return "do not contact"
    if not consented:
        return "no marketing consent" if opt_in_regime else "marketing consent withdrawn"
    return None


#: What the fill puts where the signed URLs go; delivery fills them in (signing is per message work).
UNSUBSCRIBE_MARK = "{crm:unsubscribe}"
OPEN_MARK = "{crm:open}"

#: The contact columns the fill reads (plain rows, not ORM objects: a chunk is thousands).
FILL_COLUMNS = (
    Contact.id, Contact.email, Contact.first_name, Contact.last_name, Contact.title, Contact.phone, Contact.city,
    Contact.region, Contact.country, Contact.language, Contact.timezone, Contact.stage, Contact.source,
    Contact.score, Contact.custom, Contact.do_not_contact, Contact.erased_at, Contact.merged_into_id,
)  # fmt: skip


def render_for(
    crm: CRM, compiled: CompiledTemplate, contact: Any, fields: tuple[str, ...], *, variant: str | None,
    subject: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """The rendered ``subject`` (unless held), ``html`` and ``text`` for *contact*, with marks for the signed URLs."""
    values = contact_context(contact, fields)
    subject_line = compiled.render_subject(page_context(crm, values), variant) if subject else None
    context = page_context(crm, values, subject=subject_line or "", unsubscribe_url=UNSUBSCRIBE_MARK,
                           open_pixel_url=OPEN_MARK)  # fmt: skip
    return {"subject": subject_line, "html": compiled.render_html(context), "text": compiled.render_text(context)}


def personalize_urls(
    crm: CRM, html: str | None, text: str | None, *, campaign_id: int, campaign: str, contact_id: int,
    track_opens: bool, track_clicks: bool,
) -> tuple[str | None, str | None, str]:  # fmt: skip
    """Put the signed URLs into a rendered message: unsubscribe, open pixel, tracked links.

    Returns the HTML, the text and the unsubscribe URL (for the List-Unsubscribe header).
    """
    unsubscribe = unsubscribe_url(crm, contact_id, campaign_id)
    if html is not None:
        html = html.replace(UNSUBSCRIBE_MARK, unsubscribe)
        html = html.replace(OPEN_MARK, open_pixel_url(crm, campaign_id, contact_id) if track_opens else "")
        if track_clicks:
            html = rewrite_links(html, lambda url: tracked_url(crm, url, campaign, campaign_id, contact_id))
    if text is not None:
        text = text.replace(UNSUBSCRIBE_MARK, unsubscribe).replace(OPEN_MARK, "")
    return html, text, unsubscribe


def tracked_url(crm: CRM, url: str, campaign: str, campaign_id: int, contact_id: int) -> str | None:
    """A link through the signed redirect that records the click (None: leave it alone)."""
    base = crm.settings.base_url.rstrip("/")
    if url.startswith(f"{base}/email/"):
        return None
    from crmcore.errors import ValidationError
    from crmcore.links import signed_redirect_url

    try:
        return signed_redirect_url(crm, url, contact_id=contact_id, campaign=campaign, source="email",
                                   details={"email_campaign_id": campaign_id})  # fmt: skip
    except ValidationError:
        return None  # a link the redirect refuses (a bad URL) stays as the author wrote it


def assign_batches(ctx: HookContext, campaign: Campaign, records: list[dict[str, Any]]) -> None:
    """Cut queued *records* into delivery batches (same due time each) and queue a job per batch."""
    crm = ctx.crm
    size = int(setting(crm, "batch_size"))
    rate = float(setting(crm, "rate_limit") or 0)
    if rate:
        size = max(1, min(size, int(rate * 120)))  # a batch must finish well within the job lease
    by_due: dict[datetime, list[dict[str, Any]]] = {}
    for record in records:
        by_due.setdefault(record["due_at"], []).append(record)
    for due in sorted(by_due):
        group = by_due[due]
        for start in range(0, len(group), size):
            campaign.batches += 1
            batch_due = due
            if rate:
                if campaign.next_batch_at is not None and campaign.next_batch_at > batch_due:
                    batch_due = campaign.next_batch_at
                campaign.next_batch_at = batch_due + timedelta(seconds=size / rate)
            for record in group[start : start + size]:
                record["batch"] = campaign.batches
            enqueue_batch(ctx, campaign, campaign.batches, batch_due)


def enqueue_batch(ctx: HookContext, campaign: Campaign, batch: int, due: datetime, attempt: int = 0) -> None:
    """Queue the delivery job of one batch (a later *attempt* retries its deferred recipients)."""
    suffix = f":retry{attempt}" if attempt else ""
    ctx.enqueue(DELIVER_HANDLER, {"campaign_id": campaign.id, "generation": campaign.generation, "batch": batch},
                key=f"{DELIVER_HANDLER}:{campaign.id}:{campaign.generation}:{batch}{suffix}",
                due_at=max(due, ctx.now))  # fmt: skip


def maybe_finish(ctx: HookContext, campaign: Campaign) -> bool:
    """Mark *campaign* done when its fill is complete and nobody waits any more."""
    if campaign.state != CampaignState.SENDING or not campaign.fill_done:
        return False
    if campaign.ab_metric and campaign.ab_winner is None:
        return False  # the A/B decision is still to come (its job finishes the campaign)
    waiting = ctx.scalar(
        select(Recipient.id)
        .where(
            Recipient.campaign_id == campaign.id,
            Recipient.status.in_([RecipientStatus.QUEUED, RecipientStatus.SENDING, RecipientStatus.HELD]),
        )
        .limit(1)
    )
    if waiting is not None:
        return False
    campaign.state = CampaignState.DONE
    campaign.finished_at = ctx.now
    campaign.updated_at = ctx.now
    ctx.audit("campaign.done", "email_marketing_campaign", campaign.id, {})
    return True


def requeue(ctx: HookContext, campaign: Campaign) -> None:
    """After a resume: queue the unfinished fill, the batches still waiting, and the A/B decision."""
    if not campaign.fill_done:
        ctx.enqueue(FILL_HANDLER, {"campaign_id": campaign.id, "generation": campaign.generation},
                    key=f"{FILL_HANDLER}:{campaign.id}:{campaign.generation}:{campaign.fill_cursor}")  # fmt: skip
    waiting = ctx.session.execute(
        select(Recipient.batch, func.min(Recipient.due_at))
        .where(Recipient.campaign_id == campaign.id,
               Recipient.status.in_([RecipientStatus.QUEUED, RecipientStatus.SENDING]))
        .group_by(Recipient.batch)
    ).all()  # fmt: skip
    for batch, due in waiting:
        if batch is not None:
            enqueue_batch(ctx, campaign, int(batch), due or ctx.now)
    if campaign.fill_done and campaign.ab_metric:
        held = ctx.scalar(select(Recipient.id).where(Recipient.campaign_id == campaign.id,
                                                     Recipient.status == RecipientStatus.HELD).limit(1))  # fmt: skip
        if held is not None:
            if campaign.ab_winner is None:
                ctx.enqueue(AB_HANDLER, {"campaign_id": campaign.id},
                            key=f"{AB_HANDLER}:{campaign.id}:{campaign.generation}")  # fmt: skip
            else:
                _queue_release(ctx, campaign, 0)


# -- delivery ------------------------------------------------------------------------


def deliver_job(call: JobCall) -> None:
    """Deliver one batch over one connection (see the module's description)."""
    crm = call.crm
    campaign_id, generation, batch = (call.payload["campaign_id"], call.payload["generation"],
                                      call.payload["batch"])  # fmt: skip
    with crm.transaction(independent=True) as ctx:
        campaign = ctx.session.get(Campaign, campaign_id)
        if campaign is None or campaign.state != CampaignState.SENDING or campaign.generation != generation:
            return
        ctx.session.execute(
            update(Recipient)
            .where(Recipient.campaign_id == campaign_id, Recipient.batch == batch,
                   Recipient.status == RecipientStatus.SENDING)
            .values(status=RecipientStatus.UNKNOWN, html=None, text=None,
                    reason="the worker stopped while handing its group of messages over; not resent (no duplicates)")
        )  # fmt: skip
        rows = [
            dict(row._mapping)
            for row in ctx.session.execute(
                select(Recipient.id, Recipient.contact_id, Recipient.email, Recipient.subject, Recipient.html,
                       Recipient.text, Recipient.variant, Recipient.attempts)
                .where(Recipient.campaign_id == campaign_id, Recipient.batch == batch,
                       Recipient.status == RecipientStatus.QUEUED)
                .order_by(Recipient.id)
            )
        ]  # fmt: skip
        name = campaign.name
    delivery = _Delivery(crm, campaign_id, name, generation)
    try:
        delivery.run(rows)
    except Exception:  # record what is known, then let the outbox retry the batch
        delivery.finish(batch)
        raise
    delivery.finish(batch)


class _Delivery:
    """The bookkeeping of one delivery batch: one commit per group of ``commit_every`` messages."""

    def __init__(self, crm: CRM, campaign_id: int, campaign_name: str, generation: int) -> None:
        self.crm = crm
        self.campaign_id = campaign_id
        self.campaign_name = campaign_name
        self.generation = generation
        self.max_attempts = int(setting(crm, "max_attempts"))
        self.track_opens = bool(setting(crm, "track_opens"))
        self.track_clicks = bool(setting(crm, "track_clicks"))
        self.sender_address = setting(crm, "from_address") or crm.settings.mail_from
        self.reply_to = setting(crm, "reply_to")
        self.domain = self.sender_address.rpartition("@")[2].strip("> ") or "localhost"
        self.rate = float(setting(crm, "rate_limit") or 0) or None
        group = int(setting(crm, "commit_every"))
        # Paced sending commits at least every second or so: a pause must not wait for a long group.
        self.group_size = max(1, min(group, int(self.rate))) if self.rate else group
        #: The outcomes of the group in hand, written with the next group's ``sending`` mark.
        self.outcomes: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self.deferred: list[int] = []

    def run(self, rows: list[dict[str, Any]]) -> None:
        with self.crm.mail.batch(rate=self.rate) as sender:
            for start in range(0, len(rows), self.group_size):
                group = rows[start : start + self.group_size]
                if not self._commit(next_group=group):
                    return  # paused, cancelled or resumed anew: the group stays queued
                for index, row in enumerate(group):
                    try:
                        self._deliver(sender, row)
                    except Exception as exc:
                        # An unreachable server took nothing; after anything else the message in hand
                        # may have left, so it stays ``sending`` (``unknown`` when the batch runs again).
                        untouched = index if isinstance(exc, TemporaryMailError) else index + 1
                        self.outcomes += [("requeue", later, {}) for later in group[untouched:]]
                        raise

    def _deliver(self, sender: BatchSender, row: dict[str, Any]) -> None:
        try:
            message = self._message(row)
        except ValueError as exc:  # a header with a line break: no server would take it
            self._failed(row, PermanentMailError(f"the message cannot be built: {exc}"))
            return
        for attempt in (1, 2):
            try:
                sender.send(message)
            except PermanentMailError as exc:
                self._failed(row, exc)
            except TemporaryMailError as exc:
                if exc.code is None and attempt == 1:
                    continue  # the connection dropped before the answer: reconnect, send again
                if exc.code is None:
                    raise  # the server is unreachable: the outbox retries the batch later
                self.outcomes.append(("deferred", row, {"reason": str(exc)[:480]}))
            else:
                self._sent(row, message.message_id)
            return

    def finish(self, batch: int) -> None:
        """Write the last outcomes, queue the retry of deferred recipients, finish the campaign."""
        self._commit(next_group=None)
        with self.crm.transaction(independent=True) as ctx:
            campaign = ctx.session.get(Campaign, self.campaign_id)
            if campaign is None or campaign.generation != self.generation:
                return
            if self.deferred and campaign.state == CampaignState.SENDING:
                attempts = int(ctx.scalar(select(func.max(Recipient.attempts))
                                          .where(Recipient.id.in_(self.deferred))) or 1)  # fmt: skip
                minutes = float(setting(self.crm, "retry_minutes")) * 2 ** (attempts - 1)
                enqueue_batch(ctx, campaign, batch, ctx.now + timedelta(minutes=min(minutes, 24 * 60)), attempts)
            maybe_finish(ctx, campaign)

    def _message(self, row: dict[str, Any]) -> OutgoingMail:
        html, text, unsubscribe = personalize_urls(
            self.crm, row["html"], row["text"], campaign_id=self.campaign_id, campaign=self.campaign_name,
            contact_id=row["contact_id"], track_opens=self.track_opens, track_clicks=self.track_clicks,
        )  # fmt: skip
        token = hashlib.sha1(f"{self.campaign_id}:{row['id']}".encode()).hexdigest()[:12]
        headers = {
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-CRM-Campaign": str(self.campaign_id),
        }
        message = MailMessage(
            to=row["email"], subject=row["subject"] or "", html=html, text=text,
            sender=self.sender_address, reply_to=self.reply_to, headers=headers,
            message_id=f"<em.{row['id']}.{token}@{self.domain}>",
        )  # fmt: skip
        return self.crm.mail.build(message)

    def _sent(self, row: dict[str, Any], message_id: str) -> None:
        self.outcomes.append(("sent", row, {"message_id": message_id}))

    def _failed(self, row: dict[str, Any], exc: PermanentMailError) -> None:
        self.outcomes.append(("failed", row, {"reason": str(exc)[:480], "code": exc.code}))

    def _commit(self, *, next_group: list[dict[str, Any]] | None) -> bool:
        """Write the outcomes in hand and mark *next_group* ``sending``, in one commit.

        Returns False (leaving *next_group* queued) when the campaign is no
        longer sending in this generation (paused, cancelled or resumed anew),
        or when any of its rows is no longer queued (another run of the batch).
        """
        outcomes, self.outcomes = self.outcomes, []
        if not outcomes and not next_group:
            return True
        with self.crm.transaction(independent=True) as ctx:
            self._write(ctx, outcomes)
            if not next_group:
                return True
            still_sending = (
                select(Campaign.id)
                .where(Campaign.id == self.campaign_id, Campaign.state == CampaignState.SENDING,
                       Campaign.generation == self.generation)
                .exists()
            )  # fmt: skip
            ids = [row["id"] for row in next_group]
            with ctx.session.begin_nested() as savepoint:
                claimed = ctx.session.execute(
                    update(Recipient)
                    .where(Recipient.id.in_(ids), Recipient.status == RecipientStatus.QUEUED, still_sending)
                    .values(status=RecipientStatus.SENDING, attempts=Recipient.attempts + 1)
                    .execution_options(synchronize_session=False)
                )
                if getattr(claimed, "rowcount", 0) != len(ids):
                    savepoint.rollback()
                    return False
            return True

    def _write(self, ctx: HookContext, outcomes: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
        sent = [(row, info["message_id"]) for kind, row, info in outcomes if kind == "sent"]
        if sent:
            table = Recipient.__table__
            ctx.session.execute(
                update(table)
                .where(table.c.id == bindparam("recipient_id"), table.c.status == RecipientStatus.SENDING)
                .values(status=RecipientStatus.SENT, sent_at=ctx.now, message_id=bindparam("sent_message_id"),
                        html=None, text=None),
                [{"recipient_id": row["id"], "sent_message_id": message_id} for row, message_id in sent],
            )  # fmt: skip
            for row, message_id in sent:
                ctx.call("crm_campaign_message_sent", event=CampaignMessageSent(
                    campaign_id=self.campaign_id, campaign=self.campaign_name, recipient_id=row["id"],
                    contact_id=row["contact_id"], email=row["email"], message_id=message_id,
                    variant=row["variant"], occurred_at=ctx.now,
                ))  # fmt: skip
        for kind, row, info in outcomes:
            where = and_(Recipient.id == row["id"], Recipient.status == RecipientStatus.SENDING)
            if kind == "failed":
                ctx.session.execute(update(Recipient).where(where).values(
                    status=RecipientStatus.FAILED, reason=info["reason"], html=None, text=None))  # fmt: skip
                if _is_bad_mailbox(info["code"], info["reason"]):
                    from crmcore_email_marketing.suppression import suppress_in

                    suppress_in(ctx, row["email"], "bounce", detail=info["reason"], campaign_id=self.campaign_id)
            elif kind == "deferred":
                attempts = row["attempts"] + 1
                if attempts >= self.max_attempts:
                    ctx.session.execute(update(Recipient).where(where).values(
                        status=RecipientStatus.FAILED, html=None, text=None,
                        reason=f"gave up after {attempts} temporary refusals: {info['reason']}"[:480]))  # fmt: skip
                else:
                    ctx.session.execute(update(Recipient).where(where).values(
                        status=RecipientStatus.QUEUED, reason=f"deferred: {info['reason']}"[:480]))  # fmt: skip
                    self.deferred.append(row["id"])
            elif kind == "requeue":  # not handed over at all (the attempt is not counted)
                ctx.session.execute(update(Recipient).where(where).values(
                    status=RecipientStatus.QUEUED, attempts=Recipient.attempts - 1))  # fmt: skip


def _is_bad_mailbox(code: int | None, reason: str) -> bool:
    """A permanent refusal that means the mailbox does not exist (a hard bounce)."""
    if re.search(r"\b5\.1\.\d\b", reason):
        return True
    return code in (550, 551, 553) and not re.search(r"\b5\.7\.\d\b", reason)


# -- A/B test ------------------------------------------------------------------------


def ab_decide_job(call: JobCall) -> None:
    """Pick the winning subject by unique opens or clicks of the sample, then release the rest."""
    with call.crm.transaction() as ctx:
        campaign = ctx.session.get(Campaign, call.payload["campaign_id"])
        if campaign is None or campaign.state != CampaignState.SENDING or campaign.ab_winner is not None:
            return
        campaign.ab_winner = ab_winner(ctx, campaign)
        ctx.audit("campaign.ab_winner", "email_marketing_campaign", campaign.id, {"winner": campaign.ab_winner})
        _queue_release(ctx, campaign, 0)


def ab_winner(ctx: HookContext, campaign: Campaign) -> str:
    """The variant with the best rate of unique opens (or clicks) among its sent messages."""
    engaged = Recipient.clicked_at if campaign.ab_metric == "clicks" else Recipient.opened_at
    rows = ctx.session.execute(
        select(Recipient.variant, func.count(engaged), func.count())
        .where(Recipient.campaign_id == campaign.id, Recipient.variant.is_not(None),
               Recipient.status.in_([RecipientStatus.SENT, RecipientStatus.BOUNCED]))
        .group_by(Recipient.variant)
    ).all()  # fmt: skip
    rates = {label: (count / total if total else 0.0) for label, count, total in rows}
    labels = sorted(ctx.session.scalars(select(Variant.label).where(Variant.campaign_id == campaign.id)))
    return max(labels, key=lambda label: (rates.get(label, 0.0), -labels.index(label)))


def _queue_release(ctx: HookContext, campaign: Campaign, cursor: int) -> None:
    ctx.enqueue(RELEASE_HANDLER, {"campaign_id": campaign.id, "generation": campaign.generation, "cursor": cursor},
                key=f"{RELEASE_HANDLER}:{campaign.id}:{campaign.generation}:{cursor}")  # fmt: skip


def release_job(call: JobCall) -> None:
    """Give one chunk of held recipients the winning subject and queue them."""
    crm = call.crm
    with crm.transaction() as ctx:
        campaign = ctx.session.get(Campaign, call.payload["campaign_id"])
        if campaign is None or campaign.state != CampaignState.SENDING or not campaign.ab_winner:
            return
        if campaign.generation != call.payload["generation"]:
            return
        template = ctx.session.get(Template, campaign.template_id)
        assert template is not None
        compiled = compile_template(ctx, template, campaign)
        fields = custom_field_names(ctx)
        chunk = int(setting(crm, "fill_chunk"))
        rows = ctx.session.execute(
            select(Recipient, Contact)
            .join(Contact, Contact.id == Recipient.contact_id)
            .where(Recipient.campaign_id == campaign.id, Recipient.status == RecipientStatus.HELD,
                   Recipient.id > call.payload["cursor"])
            .order_by(Recipient.id).limit(chunk)
        ).all()  # fmt: skip
        queued: list[dict[str, Any]] = []
        for recipient, contact in rows:
            try:
                subject = compiled.render_subject(page_context(crm, contact_context(contact, fields)),
                                                  campaign.ab_winner)  # fmt: skip
            except TemplateProblem as exc:
                recipient.status = RecipientStatus.SKIPPED
                recipient.reason = "template error: " + "; ".join(exc.errors.values())[:480]
                continue
            queued.append({"recipient": recipient, "subject": subject, "due_at": recipient.due_at or ctx.now})
        assign_batches(ctx, campaign, queued)
        for item in queued:
            recipient = item["recipient"]
            recipient.subject, recipient.variant = item["subject"], campaign.ab_winner
            recipient.status, recipient.batch = RecipientStatus.QUEUED, item["batch"]
        if len(rows) == chunk:
            _queue_release(ctx, campaign, rows[-1][0].id)
        else:
            maybe_finish(ctx, campaign)

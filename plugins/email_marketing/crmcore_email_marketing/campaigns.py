"""Templates and campaigns: create, check, schedule, send, pause, resume, cancel, count.

Each public method is one unit of work. Sending itself happens in jobs
(:mod:`crmcore_email_marketing.sending`): starting a campaign only checks it
and queues the first fill job, in the same transaction.
"""

from __future__ import annotations

import builtins
import hashlib
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, case, func, select, update

from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.models import Contact, CustomField
from crmcore.services.base import get_contact, get_user
from crmcore.validation import clean_text, currency_code, parse_datetime, positive_amount
from crmcore_email_marketing.models import (
    Campaign,
    CampaignState,
    Conversion,
    Recipient,
    RecipientStatus,
    Template,
    Variant,
)
from crmcore_email_marketing.rendering import CompiledTemplate, TemplateProblem, contact_context, sample_context

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM

PLUGIN = "email_marketing"
FILL_HANDLER = "email_marketing.fill"
DELIVER_HANDLER = "email_marketing.deliver"
START_HANDLER = "email_marketing.start"
AB_HANDLER = "email_marketing.ab_decide"
CHANNELS = ("email",)
AB_METRICS = ("opens", "clicks")


def setting(crm: CRM, name: str) -> Any:
    """A setting of this plugin."""
    return crm.plugin_setting(PLUGIN, name)


def custom_field_names(ctx: HookContext) -> tuple[str, ...]:
    """The declared custom fields of contacts (what ``contact.custom.<name>`` may use)."""
    return tuple(custom_field_types(ctx))


def custom_field_types(ctx: HookContext) -> dict[str, str]:
    """The declared custom fields of contacts and their types."""
    cached = ctx.cache.get("email_marketing:custom_fields")
    if cached is None:
        query = select(CustomField.name, CustomField.type).where(CustomField.entity == "contact")
        cached = dict(ctx.session.execute(query.order_by(CustomField.name)).all())
        ctx.cache["email_marketing:custom_fields"] = cached
    return dict(cached)


def compile_template(ctx: HookContext, template: Template, campaign: Campaign | None = None) -> CompiledTemplate:
    """Compile *template* (with the A/B subjects of *campaign*) and check it against a sample contact."""
    subjects: dict[str, str] = {}
    if campaign is not None:
        for variant in ctx.session.scalars(select(Variant).where(Variant.campaign_id == campaign.id)):
            subjects[variant.label] = variant.subject
    # Compiling costs tens of milliseconds (once per fill chunk otherwise): keep the last few, keyed by content.
    source = repr((template.subject, template.html, template.text, template.layout, sorted(subjects.items())))
    key = f"{template.id}:{hashlib.sha256(source.encode()).hexdigest()[:24]}"
    cache: dict[str, CompiledTemplate] = ctx.crm.__dict__.setdefault("_email_marketing_compiled", {})
    compiled = cache.get(key)
    if compiled is None:
        compiled = CompiledTemplate(ctx.crm, key=key, subject=template.subject, html=template.html,
                                    text=template.text, layout=template.layout, subjects=subjects)  # fmt: skip
        if len(cache) >= 32:
            cache.clear()
        cache[key] = compiled
    types = custom_field_types(ctx)
    compiled.check(page_context(ctx.crm, sample_context(tuple(types), types), subject=template.subject))
    return compiled


def page_context(
    crm: CRM, contact: dict[str, Any], *, subject: str = "", unsubscribe_url: str = "#", open_pixel_url: str = ""
) -> dict[str, Any]:
    """Everything a template and its layout see."""
    return {
        "contact": contact,
        "subject": subject,
        "unsubscribe_url": unsubscribe_url,
        "open_pixel_url": open_pixel_url,
        "sender_address": _sender_address(crm),
    }


def _sender_address(crm: CRM) -> str:
    # read once per CRM: the fill renders thousands of pages
    cached = crm.__dict__.get("_email_marketing_sender_address")
    if cached is None:
        cached = crm.__dict__["_email_marketing_sender_address"] = str(setting(crm, "sender_address") or "")
    return str(cached)


def resolve_segment(ctx: HookContext, name: str) -> Select[tuple[int]]:
    """The contact ids of segment *name* (``crm_segment_query``); NotFound naming the segments that exist."""
    query = ctx.call("crm_segment_query", name=name)
    if query is None:
        names = sorted(ctx.crm.plugins.collect("crm_segment_names", ctx=ctx))
        listing = f"; segments: {', '.join(names)}" if names else "; no segments are defined"
        raise NotFound(f"no segment named {name!r}{listing}")
    result: Select[tuple[int]] = query
    return result


class TemplateService:
    """Email templates: ``email_marketing(crm).templates``."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def create(
        self,
        name: str,
        *,
        subject: str,
        html: str,
        text: str | None = None,
        layout: str = "email/layout.html",
        actor: Any = None,
    ) -> Template:
        """Save a new template; a template that does not compile or render is refused naming the line."""
        values = _template_values(name=name, subject=subject, html=html, text=text, layout=layout)
        with self.crm.transaction(actor) as ctx:
            if ctx.first(Template, Template.name == values["name"]):
                raise Conflict(f"a template named {values['name']!r} exists")
            template = Template(**values, created_at=ctx.now, updated_at=ctx.now)
            ctx.session.add(template)
            ctx.session.flush()
            compile_template(ctx, template)
            ctx.audit("email_template.create", "email_marketing_template", template.id, {"name": template.name})
        return template

    def update(self, name: str, *, actor: Any = None, **changes: Any) -> Template:
        """Change a template's subject, html, text or layout; refused while a campaign using it sends."""
        unknown = set(changes) - {"subject", "html", "text", "layout"}
        if unknown:
            raise ValidationError(dict.fromkeys(sorted(unknown), "unknown field"))
        with self.crm.transaction(actor) as ctx:
            template = _template(ctx, name)
            busy = ctx.scalar(
                select(Campaign.name)
                .where(
                    Campaign.template_id == template.id,
                    Campaign.state.in_([CampaignState.SENDING, CampaignState.PAUSED, CampaignState.SCHEDULED]),
                )
                .limit(1)
            )
            if busy:
                raise Conflict(
                    f"template {template.name!r} is used by campaign {busy!r}, which is scheduled or sending"
                )
            current = {"name": template.name, "subject": template.subject, "html": template.html,
                       "text": template.text, "layout": template.layout}  # fmt: skip
            values = _template_values(**{**current, **changes})
            for key, value in values.items():
                setattr(template, key, value)
            template.updated_at = ctx.now
            compile_template(ctx, template)
            ctx.audit("email_template.update", "email_marketing_template", template.id, {"fields": sorted(changes)})
        return template

    def get(self, name: str) -> Template:
        """The template *name* (or id)."""
        with self.crm.transaction(readonly=True) as ctx:
            return _template(ctx, name)

    def list(self) -> list[Template]:
        """Every template, by name."""
        with self.crm.transaction(readonly=True) as ctx:
            return list(ctx.session.scalars(select(Template).order_by(Template.name)))

    def preview(self, name: str, contact: Any = None, *, variant: str | None = None) -> dict[str, str]:
        """Render template *name* for *contact* (or a sample contact): ``subject``, ``html``, ``text``."""
        from crmcore.mail import html_to_text

        with self.crm.transaction(readonly=True) as ctx:
            template = _template(ctx, name)
            compiled = compile_template(ctx, template)
            fields = custom_field_names(ctx)
            if contact is not None:
                values = contact_context(get_contact(ctx, contact), fields)
            else:
                values = sample_context(fields, custom_field_types(ctx))
            subject = compiled.render_subject(page_context(self.crm, values), variant)
            context = page_context(self.crm, values, subject=subject)
            html = compiled.render_html(context)
            text = compiled.render_text(context)
        return {"subject": subject, "html": html, "text": text if text is not None else html_to_text(html)}


def _template_values(**values: Any) -> dict[str, Any]:
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for field, limit, required in (("name", 120, True), ("subject", 998, True), ("layout", 200, True)):
        try:
            out[field] = clean_text(values.get(field), field, limit, required=required)
        except ValidationError as exc:
            errors.update(exc.errors)
    html = values.get("html")
    if not isinstance(html, str) or not html.strip():
        errors["html"] = "is required"
    elif len(html) > 1_000_000:
        errors["html"] = "is longer than 1,000,000 characters"
    out["html"] = html
    text = values.get("text")
    out["text"] = text if isinstance(text, str) and text.strip() else None
    if errors:
        raise ValidationError(errors)
    return out


def _template(ctx: HookContext, ref: Any) -> Template:
    if isinstance(ref, Template):
        ref = ref.id
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        found = ctx.session.get(Template, int(ref))
    else:
        found = ctx.first(Template, Template.name == str(ref).strip())
    if found is None:
        raise NotFound(f"no email template {ref!r}")
    return found


def get_campaign(ctx: HookContext, ref: Any, *, lock: bool = False) -> Campaign:
    """The campaign *ref* (name, id or row); NotFound otherwise."""
    if isinstance(ref, Campaign):
        ref = ref.id
    query = select(Campaign)
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        query = query.where(Campaign.id == int(ref))
    else:
        query = query.where(Campaign.name == str(ref).strip())
    if lock and ctx.session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    found = ctx.session.scalars(query).first()
    if found is None:
        raise NotFound(f"no campaign {ref!r}")
    if lock:
        ctx.session.refresh(found)
    return found


class CampaignService:
    """Email campaigns: ``email_marketing(crm).campaigns``."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def create(
        self,
        name: str,
        *,
        template: Any,
        segment: str,
        goal: str | None = None,
        budget: Any = None,
        cost: Any = None,
        currency: str | None = None,
        owner: int | str | None = None,
        channel: str = "email",
        actor: Any = None,
    ) -> Campaign:
        """A new draft campaign sending *template* to *segment*."""
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        for field, value, limit, required in (("name", name, 200, True), ("goal", goal, 255, False),
                                              ("segment", segment, 120, True)):  # fmt: skip
            try:
                values[field] = clean_text(value, field, limit, required=required)
            except ValidationError as exc:
                errors.update(exc.errors)
        if channel not in CHANNELS:
            errors["channel"] = f"unknown channel {channel!r}; channels: {', '.join(CHANNELS)}"
        for field, value in (("budget", budget), ("cost", cost)):
            if value not in (None, ""):
                try:
                    values[field] = positive_amount(value, field)
                except ValidationError as exc:
                    errors.update(exc.errors)
        try:
            values["currency"] = currency_code(currency, self.crm.settings.currency)
        except ValidationError as exc:
            errors.update(exc.errors)
        if errors:
            raise ValidationError(errors)
        with self.crm.transaction(actor) as ctx:
            if ctx.first(Campaign, Campaign.name == values["name"]):
                raise Conflict(f"a campaign named {values['name']!r} exists")
            found = _template(ctx, template)
            owner_user = get_user(ctx, owner)
            campaign = Campaign(
                name=values["name"], goal=values.get("goal"), channel=channel, segment=values["segment"],
                template_id=found.id, budget=values.get("budget"), actual_cost=values.get("cost", Decimal(0)),
                currency=values["currency"], state=CampaignState.DRAFT,
                owner_id=owner_user.id if owner_user else ctx.actor.user_id, generation=0, fill_cursor=0,
                fill_done=False, batches=0, ab_sample_percent=20, ab_wait_minutes=240,
                created_at=ctx.now, updated_at=ctx.now,
            )  # fmt: skip
            ctx.session.add(campaign)
            ctx.session.flush()
            ctx.audit("campaign.create", "email_marketing_campaign", campaign.id, {"name": campaign.name})
        return campaign

    def update(self, ref: Any, *, actor: Any = None, **changes: Any) -> Campaign:
        """Change a draft or scheduled campaign (goal, segment, template, budget, cost, owner).

        Only the cost may change once sending has started (what was spent is
        known late); anything else is a Conflict.
        """
        allowed = {"goal", "segment", "template", "budget", "cost", "owner", "currency"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValidationError(dict.fromkeys(sorted(unknown), "unknown field"))
        with self.crm.transaction(actor) as ctx:
            campaign = get_campaign(ctx, ref, lock=True)
            if set(changes) - {"cost"} and campaign.state not in (CampaignState.DRAFT, CampaignState.SCHEDULED):
                raise Conflict(f"campaign {campaign.name!r} is {campaign.state}: only its cost can change now")
            errors: dict[str, str] = {}
            for field in ("budget", "cost"):
                if field in changes:
                    try:
                        amount = positive_amount(changes[field], field) if changes[field] not in (None, "") else None
                    except ValidationError as exc:
                        errors.update(exc.errors)
                        continue
                    if field == "budget":
                        campaign.budget = amount
                    else:
                        campaign.actual_cost = amount or Decimal(0)
            if "goal" in changes:
                campaign.goal = clean_text(changes["goal"], "goal", 255)
            if "segment" in changes:
                campaign.segment = clean_text(changes["segment"], "segment", 120, required=True) or campaign.segment
            if "currency" in changes:
                campaign.currency = currency_code(changes["currency"], self.crm.settings.currency)
            if errors:
                raise ValidationError(errors)
            if "template" in changes:
                campaign.template_id = _template(ctx, changes["template"]).id
            if "owner" in changes:
                user = get_user(ctx, changes["owner"])
                campaign.owner_id = user.id if user else None
            campaign.updated_at = ctx.now
            ctx.audit("campaign.update", "email_marketing_campaign", campaign.id, {"fields": sorted(changes)})
        return campaign

    def ab_test(
        self,
        ref: Any,
        subjects: dict[str, str],
        *,
        metric: str = "opens",
        sample_percent: int = 20,
        wait_minutes: int = 240,
        actor: Any = None,
    ) -> Campaign:
        """Test subject lines: *sample_percent* of the recipients get one variant each; after
        *wait_minutes* the variant with the best open (or click) rate goes to everyone else."""
        errors: dict[str, str] = {}
        if metric not in AB_METRICS:
            errors["metric"] = f"must be one of {', '.join(AB_METRICS)}"
        if not 2 <= len(subjects) <= 5:
            errors["subjects"] = "give 2 to 5 subject lines"
        if not 1 <= int(sample_percent) <= 100:
            errors["sample_percent"] = "must be between 1 and 100"
        if int(wait_minutes) < 1:
            errors["wait_minutes"] = "must be at least 1"
        for label, subject in subjects.items():
            if not str(label).isalnum() or len(str(label)) > 10 or not str(subject).strip():
                errors[f"subjects.{label}"] = "a label of letters or digits and a non-empty subject"
        if errors:
            raise ValidationError(errors)
        with self.crm.transaction(actor) as ctx:
            campaign = get_campaign(ctx, ref, lock=True)
            if campaign.state != CampaignState.DRAFT:
                raise Conflict(f"campaign {campaign.name!r} is {campaign.state}: A/B tests are set up on drafts")
            for old in ctx.session.scalars(select(Variant).where(Variant.campaign_id == campaign.id)):
                ctx.session.delete(old)
            ctx.session.flush()
            for label, subject in subjects.items():
                ctx.session.add(Variant(campaign_id=campaign.id, label=str(label), subject=str(subject).strip()))
            campaign.ab_metric, campaign.ab_sample_percent, campaign.ab_wait_minutes = (
                metric, int(sample_percent), int(wait_minutes))  # fmt: skip
            campaign.updated_at = ctx.now
            ctx.session.flush()
            compile_template(ctx, ctx.session.get(Template, campaign.template_id), campaign)  # type: ignore[arg-type]
        return campaign

    def get(self, ref: Any) -> Campaign:
        """The campaign *ref* (name or id)."""
        with self.crm.transaction(readonly=True) as ctx:
            return get_campaign(ctx, ref)

    def list(self, *, state: str | None = None) -> list[Campaign]:
        """Campaigns, newest first (only those in *state* when given)."""
        if state is not None and state not in {s.value for s in CampaignState}:
            raise ValidationError(
                {"state": f"unknown state {state!r}; states: {', '.join(s.value for s in CampaignState)}"}
            )
        with self.crm.transaction(readonly=True) as ctx:
            query = select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc())
            if state:
                query = query.where(Campaign.state == state)
            return list(ctx.session.scalars(query))

    def schedule(
        self, ref: Any, *, at: datetime | str | None = None, local_time: str | None = None, actor: Any = None
    ) -> Campaign:
        """Send at *at* (UTC, or with a zone), or at the wall time *local_time* (``YYYY-MM-DDTHH:MM``)
        in each recipient's time zone (the CRM's zone for contacts without one)."""
        if (at is None) == (local_time is None):
            raise ValidationError({"at": "give either a time (at) or a local wall time (local_time)"})
        when: datetime | None = None
        local: str | None = None
        if at is not None:
            when = parse_datetime(at, "at")
        else:
            try:
                local_dt = datetime.fromisoformat(str(local_time))
            except ValueError:
                raise ValidationError({"local_time": f"{local_time!r} is not YYYY-MM-DDTHH:MM"}) from None
            if local_dt.tzinfo is not None:
                raise ValidationError({"local_time": "a wall time has no zone: each recipient's zone applies"})
            local = local_dt.strftime("%Y-%m-%dT%H:%M")
            # The start is the first moment anywhere reaches that wall time (UTC+14).
            when = local_dt.replace(tzinfo=ZoneInfo("Etc/GMT-14"))
        assert when is not None
        with self.crm.transaction(actor) as ctx:
            campaign = get_campaign(ctx, ref, lock=True)
            if campaign.state not in (CampaignState.DRAFT, CampaignState.SCHEDULED):
                raise Conflict(f"campaign {campaign.name!r} is {campaign.state}; only a draft can be scheduled")
            if when < ctx.now and local is None:
                raise ValidationError({"at": f"{when.isoformat()} is in the past"})
            self._check_ready(ctx, campaign)
            ctx.cancel_jobs(f"{START_HANDLER}:{campaign.id}:", prefix=True)
            campaign.state = CampaignState.SCHEDULED
            campaign.send_at = max(when, ctx.now)
            campaign.local_send_at = local
            campaign.updated_at = ctx.now
            ctx.enqueue(START_HANDLER, {"campaign_id": campaign.id},
                        key=f"{START_HANDLER}:{campaign.id}:{campaign.send_at.timestamp():.0f}",
                        due_at=campaign.send_at)  # fmt: skip
            ctx.audit("campaign.schedule", "email_marketing_campaign", campaign.id,
                      {"at": campaign.send_at, "local_time": local})  # fmt: skip
        return campaign

    def send(self, ref: Any, *, actor: Any = None) -> Campaign:
        """Start sending now: checks the template and segment, then queues the streaming fill."""
        with self.crm.transaction(actor) as ctx:
            campaign = get_campaign(ctx, ref, lock=True)
            if campaign.state not in (CampaignState.DRAFT, CampaignState.SCHEDULED):
                raise Conflict(
                    f"campaign {campaign.name!r} is {campaign.state}; only a draft or scheduled one can be sent"
                )
            ctx.cancel_jobs(f"{START_HANDLER}:{campaign.id}:", prefix=True)
            campaign.send_at = ctx.now if campaign.local_send_at is None else campaign.send_at
            start_sending(ctx, campaign)
        return campaign

    def pause(self, ref: Any, *, actor: Any = None) -> Campaign:
        """Stop sending after the messages in hand (``commit_every``); ``resume`` carries on where it stopped."""
        with self.crm.transaction(actor) as ctx:
            campaign = get_campaign(ctx, ref, lock=True)
            if campaign.state != CampaignState.SENDING:
                raise Conflict(f"campaign {campaign.name!r} is {campaign.state}; only a sending one can be paused")
            campaign.state = CampaignState.PAUSED
            campaign.updated_at = ctx.now
            ctx.audit("campaign.pause", "email_marketing_campaign", campaign.id, {})
        return campaign

    def resume(self, ref: Any, *, actor: Any = None) -> Campaign:
        """Carry on a paused campaign: the recipients not yet sent get their message, nobody twice."""
        with self.crm.transaction(actor) as ctx:
            campaign = get_campaign(ctx, ref, lock=True)
            if campaign.state != CampaignState.PAUSED:
                raise Conflict(f"campaign {campaign.name!r} is {campaign.state}; only a paused one can be resumed")
            campaign.state = CampaignState.SENDING
            campaign.generation += 1
            campaign.updated_at = ctx.now
            from crmcore_email_marketing.sending import requeue

            requeue(ctx, campaign)
            ctx.audit("campaign.resume", "email_marketing_campaign", campaign.id, {"generation": campaign.generation})
        return campaign

    def cancel(self, ref: Any, *, actor: Any = None) -> Campaign:
        """Cancel a campaign that is not done: nothing more is sent."""
        with self.crm.transaction(actor) as ctx:
            campaign = get_campaign(ctx, ref, lock=True)
            if campaign.state in (CampaignState.DONE, CampaignState.CANCELLED):
                raise Conflict(f"campaign {campaign.name!r} is already {campaign.state}")
            campaign.state = CampaignState.CANCELLED
            campaign.finished_at = ctx.now
            campaign.updated_at = ctx.now
            for handler in (START_HANDLER, FILL_HANDLER, DELIVER_HANDLER, AB_HANDLER):
                ctx.cancel_jobs(f"{handler}:{campaign.id}:", prefix=True)
            ctx.session.execute(
                update(Recipient)
                .where(Recipient.campaign_id == campaign.id,
                       Recipient.status.in_([RecipientStatus.QUEUED, RecipientStatus.HELD]))
                .values(status=RecipientStatus.CANCELLED, reason="campaign cancelled", html=None, text=None)
            )  # fmt: skip
            ctx.audit("campaign.cancel", "email_marketing_campaign", campaign.id, {})
        return campaign

    def stats(self, ref: Any) -> dict[str, Any]:
        """The campaign's numbers: recipients per status, opens, clicks, unsubscribes, conversions, ROI."""
        with self.crm.transaction(readonly=True) as ctx:
            campaign = get_campaign(ctx, ref)
            return campaign_stats(ctx, campaign)

    def skipped(self, ref: Any, *, limit: int = 100) -> builtins.list[dict[str, Any]]:
        """Recipients not sent (skipped, failed, unknown, bounced), each with its reason."""
        with self.crm.transaction(readonly=True) as ctx:
            campaign = get_campaign(ctx, ref)
            rows = ctx.session.execute(
                select(Recipient.contact_id, Recipient.email, Recipient.status, Recipient.reason)
                .where(Recipient.campaign_id == campaign.id,
                       Recipient.status.in_([RecipientStatus.SKIPPED, RecipientStatus.FAILED,
                                             RecipientStatus.UNKNOWN, RecipientStatus.BOUNCED]))
                .order_by(Recipient.id).limit(limit)
            )  # fmt: skip
            return [dict(row._mapping) for row in rows]

    def _check_ready(self, ctx: HookContext, campaign: Campaign) -> int:
        template = ctx.session.get(Template, campaign.template_id)
        assert template is not None
        try:
            compile_template(ctx, template, campaign)
        except TemplateProblem as exc:
            raise TemplateProblem({f"template.{k}": v for k, v in exc.errors.items()}) from None
        segment = resolve_segment(ctx, campaign.segment)
        matched = int(ctx.scalar(select(func.count()).select_from(segment.subquery())) or 0)
        if matched == 0:
            raise ValidationError({"segment": f"segment {campaign.segment!r} matches no contacts"})
        return matched


def start_sending(ctx: HookContext, campaign: Campaign) -> None:
    """Check *campaign* and queue its first fill job (state ``sending``)."""
    CampaignService(ctx.crm)._check_ready(ctx, campaign)
    campaign.state = CampaignState.SENDING
    campaign.started_at = ctx.now
    campaign.started_on = ctx.now.astimezone(ctx.crm.settings.zone).date()
    campaign.generation += 1
    campaign.next_batch_at = None
    campaign.updated_at = ctx.now
    ctx.enqueue(FILL_HANDLER, {"campaign_id": campaign.id, "generation": campaign.generation},
                key=f"{FILL_HANDLER}:{campaign.id}:{campaign.generation}:{campaign.fill_cursor}")  # fmt: skip
    ctx.audit("campaign.send", "email_marketing_campaign", campaign.id, {"generation": campaign.generation})


def campaign_stats(ctx: HookContext, campaign: Campaign) -> dict[str, Any]:
    """The figures of one campaign, computed by the database."""
    statuses = dict(
        ctx.session.execute(
            select(Recipient.status, func.count())
            .where(Recipient.campaign_id == campaign.id)
            .group_by(Recipient.status)
        ).all()
    )
    engaged = ctx.session.execute(
        select(
            func.count(Recipient.opened_at), func.count(Recipient.clicked_at), func.count(Recipient.unsubscribed_at),
            func.coalesce(func.sum(Recipient.opens), 0), func.coalesce(func.sum(Recipient.clicks), 0),
            func.sum(case((Recipient.complained_at.is_not(None), 1), else_=0)),
        ).where(Recipient.campaign_id == campaign.id)
    ).one()  # fmt: skip
    conversions, revenue = ctx.session.execute(
        select(func.count(), func.coalesce(func.sum(Conversion.amount), 0)).where(
            Conversion.campaign_id == campaign.id, Conversion.currency == campaign.currency
        )
    ).one()
    sent = int(statuses.get(RecipientStatus.SENT, 0)) + int(statuses.get(RecipientStatus.BOUNCED, 0))
    bounced = int(statuses.get(RecipientStatus.BOUNCED, 0))
    delivered = sent - bounced
    revenue = Decimal(str(revenue)).quantize(Decimal("0.01"))
    cost = Decimal(str(campaign.actual_cost or 0)).quantize(Decimal("0.01"))
    return {
        "campaign": campaign.name,
        "state": campaign.state,
        "recipients": sum(int(v) for v in statuses.values()),
        "statuses": {str(k): int(v) for k, v in sorted(statuses.items())},
        "sent": sent,
        "delivered": delivered,
        "bounced": bounced,
        "failed": int(statuses.get(RecipientStatus.FAILED, 0)),
        "skipped": int(statuses.get(RecipientStatus.SKIPPED, 0)),
        "unique_opens": int(engaged[0]),
        "unique_clicks": int(engaged[1]),
        "opens": int(engaged[3]),
        "clicks": int(engaged[4]),
        "click_through_rate": round(int(engaged[1]) / delivered, 6) if delivered else None,
        "open_rate": round(int(engaged[0]) / delivered, 6) if delivered else None,
        "unsubscribes": int(engaged[2]),
        "complaints": int(engaged[5] or 0),
        "conversions": int(conversions),
        "revenue": revenue,
        "cost": cost,
        "budget": campaign.budget,
        "currency": campaign.currency,
        "roi": round(float((revenue - cost) / cost), 6) if cost else None,
    }


def recipient_due(campaign: Campaign, contact: Contact, crm_zone: str, now: datetime) -> datetime:
    """When *contact* gets the campaign: now, or the local wall time in the contact's zone."""
    if campaign.local_send_at is None:
        return now
    local = datetime.fromisoformat(campaign.local_send_at)
    try:
        zone = ZoneInfo(contact.timezone or crm_zone)
    except (ValueError, KeyError):
        zone = ZoneInfo(crm_zone)
    due = local.replace(tzinfo=zone)
    return max(due, now)


__all__ = [
    "CampaignService",
    "TemplateService",
    "campaign_stats",
    "compile_template",
    "get_campaign",
    "recipient_due",
    "resolve_segment",
    "setting",
    "start_sending",
]

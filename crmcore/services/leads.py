"""Leads: capture (one or many), touchpoints, qualification and scoring; interactions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs
from sqlalchemy import select

from crmcore.context import NEW_KEY, HookContext
from crmcore.errors import CRMError, ValidationError
from crmcore.events import (
    InteractionLogged,
    LeadCaptured,
    LeadQualified,
    ScoreContribution,
    TouchpointRecorded,
)
from crmcore.i18n import N_
from crmcore.models import INTERACTION_KINDS, Contact, Interaction, LifecycleChange, Stage, TouchKind, Touchpoint
from crmcore.services.base import (
    ContactRef,
    Service,
    change_stage,
    editable_contact,
    get_contact,
    get_user,
    new_lead_score,
    rescore,
    score_contributions,
)
from crmcore.services.contacts import set_tags
from crmcore.services.fields import clean_contact
from crmcore.validation import clean_text, currency_code, parse_datetime, positive_amount

#: Touchpoint fields that may be given with a capture or a recorded touch.
TOUCH_FIELDS = frozenset(
    {
        "kind", "occurred_at", "source", "medium", "campaign", "ad", "affiliate", "referrer",
        "url", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
        "click_id", "click_id_kind", "value", "currency", "quantity", "user", "notes",
        "external_id", "details",
    }
)  # fmt: skip
CLICK_ID_KINDS = ("gclid", "fbclid", "msclkid")
_SHORT = ("source", "medium", "campaign", "ad", "affiliate", "utm_source", "utm_medium",
          "utm_campaign", "utm_term", "utm_content", "click_id", "external_id")  # fmt: skip


def clean_touch(ctx: HookContext, data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate touchpoint fields; all errors at once. Every value is untrusted, bounded input."""
    errors: dict[str, str] = dict.fromkeys(sorted(set(data) - TOUCH_FIELDS), "unknown field")
    values: dict[str, Any] = {}

    def attempt(fn: Any) -> None:
        try:
            fn()
        except ValidationError as exc:
            errors.update(exc.errors)

    kind = str(data.get("kind") or "")
    if kind not in {k.value for k in TouchKind}:
        errors["kind"] = f"unknown kind {kind!r}; kinds: {', '.join(k.value for k in TouchKind)}"
    values["kind"] = kind
    for field in _SHORT:
        if field in data:
            attempt(lambda f=field: values.__setitem__(f, clean_text(data[f], f, 255)))
    for field in ("referrer", "url", "notes"):
        if field in data:
            attempt(lambda f=field: values.__setitem__(f, clean_text(data[f], f, 4000)))
    if data.get("click_id_kind"):
        if data["click_id_kind"] not in CLICK_ID_KINDS:
            errors["click_id_kind"] = f"must be one of {', '.join(CLICK_ID_KINDS)}"
        values["click_id_kind"] = data["click_id_kind"]
    attempt(
        lambda: values.__setitem__("occurred_at", parse_datetime(data.get("occurred_at"), "occurred_at") or ctx.now)
    )
    if data.get("value") not in (None, ""):
        attempt(lambda: values.__setitem__("value", positive_amount(data["value"], "value")))
        attempt(lambda: values.__setitem__("currency", currency_code(data.get("currency"), ctx.crm.settings.currency)))
    if data.get("quantity") not in (None, ""):
        try:
            quantity = int(data["quantity"])
            if quantity < 1:
                raise ValueError
            values["quantity"] = quantity
        except (TypeError, ValueError):
            errors["quantity"] = "must be a positive whole number"
    if data.get("user") not in (None, ""):
        attempt(lambda: values.__setitem__("user_id", get_user(ctx, data["user"], "user").id))  # type: ignore[union-attr]
    if "details" in data:
        if not isinstance(data["details"], Mapping):
            errors["details"] = "must be a mapping"
        else:
            values["details"] = dict(data["details"])
    if errors:
        raise ValidationError(errors)
    return values


def record_touch_in(ctx: HookContext, contact: Contact | None, values: Mapping[str, Any]) -> Touchpoint:
    """Record a validated touchpoint inside *ctx*: hooks, activity time, score, attribution."""
    from crmcore.attribution import attribution_opened, opening_attribution, touch_recorded
    from crmcore.rollup_marks import touch_written

    touch = Touchpoint(**{"quantity": 1, "details": {}, **values, "contact_id": contact.id if contact else None})
    ctx.call("crm_touchpoint_before_record", touchpoint=touch)
    opening = opening_attribution(ctx, contact, touch)
    if opening is None:
        ctx.persist(touch)
    else:  # a new contact's first creditable touch: its attribution row goes with it (one statement on PostgreSQL)
        ctx.persist(touch, opening)
        attribution_opened(ctx, touch)
    if contact is not None:
        fresh = ctx.cache.get("fresh_touches", {}).get(contact.id)
        if fresh is not None:
            fresh.append((touch.kind, touch.occurred_at))
        if contact.last_activity_at is None or touch.occurred_at > contact.last_activity_at:
            contact.last_activity_at = touch.occurred_at
        rescore(ctx, contact)
    touch_recorded(ctx, contact, touch)
    touch_written(ctx, touch)
    ctx.cache["last_touch_id"] = touch.id
    ctx.call(
        "crm_touchpoint_recorded",
        event=TouchpointRecorded(
            touchpoint_id=touch.id, contact_id=touch.contact_id, kind=touch.kind, occurred_at=touch.occurred_at
        ),
    )
    return touch


def qualify_in(ctx: HookContext, contact: Contact, reason: str) -> None:
    """Make a lead a prospect inside *ctx*, firing the qualification hooks."""
    if contact.stage != Stage.LEAD:
        raise ValidationError.on("stage", N_("only a lead can be qualified; this contact is a %(stage)s"),
                                 terms={"stage": str(contact.stage)})
    ctx.call("crm_lead_before_qualify", contact=contact, reason=reason)
    event = change_stage(ctx, contact, Stage.PROSPECT, reason)
    ctx.call(
        "crm_lead_qualified",
        event=LeadQualified(contact_id=contact.id, reason=reason, score=contact.score, occurred_at=ctx.now),
    )
    ctx.call("crm_lifecycle_stage_changed", event=event)


def capture_in(ctx: HookContext, fields: Mapping[str, Any], touch: Mapping[str, Any] | None) -> Contact:
    """Capture a lead inside *ctx* (web forms, conversions): see :meth:`LeadService.capture`."""
    return ctx.crm.leads._capture_in(ctx, fields, touch)


@attrs.frozen
class CaptureError:
    """Why one record of a batch was not captured."""

    index: int
    errors: dict[str, str]


@attrs.define
class BatchResult:
    """What ``capture_many`` did: ids created, ids matched, and refused records."""

    created: list[int] = attrs.field(factory=list)
    matched: list[int] = attrs.field(factory=list)
    errors: list[CaptureError] = attrs.field(factory=list)


class LeadService(Service):
    """How leads come in and become prospects."""

    def capture(
        self,
        *,
        touch: Mapping[str, Any] | None = None,
        actor: Any = None,
        **fields: Any,
    ) -> Contact:
        """Capture a lead; a known email (or phone) records the touch on the existing contact.

        *fields* are contact fields (``email``, ``phone``, ``first_name``, …,
        ``custom``, ``tags``); *touch* optionally describes the touchpoint that
        brought them (``{"kind": "form", "utm_source": ...}``). Returns the
        contact, with ``contact.created`` False when an existing one matched.
        """
        with self.crm.transaction(actor) as ctx:
            if ctx.actor.user_id is not None:
                from crmcore import permissions

                permissions.require(ctx, "leads.capture")
            return self._capture_in(ctx, fields, touch)

    def capture_many(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        touch: Mapping[str, Any] | None = None,
        actor: Any = None,
    ) -> BatchResult:
        """Capture many leads in one transaction; refused records are reported, not raised.

        Each record is its own savepoint, so a veto or a bad value skips that
        record alone; any other error rolls back the whole batch.
        """
        result = BatchResult()
        with self.crm.transaction(actor) as ctx:
            for index, record in enumerate(records):
                data = dict(record)
                record_touch = data.pop("touch", None) or touch
                try:
                    with ctx.session.begin_nested():
                        contact = self._capture_in(ctx, data, record_touch)
                except ValidationError as exc:
                    result.errors.append(CaptureError(index, exc.errors))
                    continue
                (result.created if contact.created else result.matched).append(contact.id)
        return result

    def _capture_in(self, ctx: HookContext, fields: Mapping[str, Any], touch: Mapping[str, Any] | None) -> Contact:
        if "stage" in fields:
            raise ValidationError({"stage": "a captured lead starts as a lead"})
        values = clean_contact(ctx, fields, creating=True)
        touch_values = clean_touch(ctx, touch) if touch else None
        if not values.get("email_normalized") and not values.get("phone_normalized"):
            raise ValidationError({"email": "a lead needs an email or a phone number"})
        tags = values.pop("tags", [])
        candidate = Contact(**values)
        existing = ctx.call("crm_duplicate_find", contact=candidate)
        if existing is not None:
            contact: Contact = existing
            contact.created = False
            fill = {k: v for k, v in values.items() if k != "custom" and v is not None and getattr(contact, k) is None}
            for key, value in fill.items():
                setattr(contact, key, value)
            if values.get("custom"):  # what is known already wins over what a form says
                contact.custom = {**values["custom"], **(contact.custom or {})}
            set_tags(ctx, contact.id, tags, replace=False)
            contact.updated_at = ctx.now
            ctx.audit("lead.recapture", "contact", contact.id, {"filled": sorted(fill)})
            if touch_values:
                record_touch_in(ctx, contact, touch_values)
            return contact
        contact = candidate
        contact.stage = Stage.LEAD
        contact.created_at = contact.updated_at = contact.stage_changed_at = contact.last_activity_at = ctx.now
        contact.score = 0
        contact.custom = values.get("custom") or {}
        contact.source = contact.source or (touch_values or {}).get("utm_source") or (touch_values or {}).get("source")
        if contact.owner_id is None:
            contact.owner_id = ctx.call("crm_owner_assign", contact=contact)
        ctx.call("crm_lead_before_capture", contact=contact)
        if contact.score == 0:  # (unless a hook set one) the score its touch will earn, known now: no UPDATE
            contact.score = new_lead_score(ctx, contact, touch_values)  # follows; rescore() below still checks
        ctx.persist(  # with its first stage and the audit entry: one statement on PostgreSQL
            contact,
            (LifecycleChange, {"contact_id": NEW_KEY, "from_stage": None, "to_stage": Stage.LEAD,
                               "reason": "captured", "occurred_at": ctx.now, "actor_id": ctx.actor.user_id}),
            ctx.audit_row("lead.capture", "contact", NEW_KEY, {"email": contact.email, "source": contact.source}),
        )  # fmt: skip
        # A contact created in this unit of work has only the touchpoints recorded here.
        ctx.cache.setdefault("fresh_touches", {})[contact.id] = []
        set_tags(ctx, contact.id, tags, replace=False)
        touchpoint = record_touch_in(ctx, contact, touch_values) if touch_values else None
        if touchpoint is None:
            rescore(ctx, contact)
        ctx.call(
            "crm_lead_captured",
            event=LeadCaptured(
                contact_id=contact.id,
                touchpoint_id=touchpoint.id if touchpoint else None,
                source=contact.source,
                occurred_at=ctx.now,
            ),
        )
        return contact

    def qualify(self, ref: ContactRef, *, reason: str, actor: Any = None) -> Contact:
        """Make a lead a prospect, with the rep's reason."""
        reason_text = clean_text(reason, "reason", 255, required=True)
        assert reason_text is not None
        with self.crm.transaction(actor) as ctx:
            contact = editable_contact(ctx, ref)
            qualify_in(ctx, contact, reason_text)
        return contact

    def score(self, ref: ContactRef) -> tuple[int, list[ScoreContribution]]:
        """The contact's current score and every contribution with its reason."""
        with self.crm.transaction(readonly=True) as ctx:
            contact = get_contact(ctx, ref)
            contributions = score_contributions(ctx, contact)
            return sum(c.points for c in contributions), contributions

    def rescore(self, ref: ContactRef) -> int:
        """Recompute and store a contact's score (points decay with inactivity)."""
        with self.crm.transaction() as ctx:
            return rescore(ctx, get_contact(ctx, ref))


class TouchpointService(Service):
    """Every sign of interest: clicks, opens, forms, visits, calls, conversions."""

    def record(self, contact: ContactRef | None, *, actor: Any = None, **touch: Any) -> Touchpoint:
        """Record a touchpoint for a contact (or an anonymous one with ``None``)."""
        with self.crm.transaction(actor) as ctx:
            values = clean_touch(ctx, touch)
            if values["kind"] in (TouchKind.CALL, TouchKind.VISIT, TouchKind.MEETING) and "user_id" not in values:
                values["user_id"] = ctx.actor.user_id
            target = editable_contact(ctx, contact) if contact is not None else None
            if target is not None and target.erased_at is not None:
                raise ValidationError({"contact": N_("this contact was erased")})
            if values.get("external_id") and ctx.first(Touchpoint, Touchpoint.external_id == values["external_id"]):
                raise CRMError(f"touchpoint {values['external_id']!r} was already recorded")
            return record_touch_in(ctx, target, values)

    def list(self, contact: ContactRef, *, limit: int = 50) -> list[Touchpoint]:
        """A contact's touchpoints, newest first."""
        with self.crm.transaction(readonly=True) as ctx:
            target = get_contact(ctx, contact)
            return list(
                ctx.session.scalars(
                    select(Touchpoint)
                    .where(Touchpoint.contact_id == target.id)
                    .order_by(Touchpoint.occurred_at.desc(), Touchpoint.id.desc())
                    .limit(limit)
                )
            )


class InteractionService(Service):
    """Calls, meetings, emails and notes that reps log."""

    def log(
        self,
        contact: ContactRef,
        *,
        kind: str,
        subject: str | None = None,
        body: str | None = None,
        direction: str | None = None,
        occurred_at: datetime | str | None = None,
        duration_minutes: int | None = None,
        outcome: str | None = None,
        opportunity_id: int | None = None,
        actor: Any = None,
    ) -> Interaction:
        """Log an interaction; the acting user is recorded as the rep."""
        errors: dict[str, str] = {}
        if kind not in INTERACTION_KINDS:
            errors["kind"] = f"unknown kind {kind!r}; kinds: {', '.join(INTERACTION_KINDS)}"
        if direction not in (None, "in", "out"):
            errors["direction"] = N_("must be in or out")
        if duration_minutes is not None and (not isinstance(duration_minutes, int) or duration_minutes < 0):
            errors["duration_minutes"] = N_("must be zero or a positive whole number")
        if errors:
            raise ValidationError(errors)
        with self.crm.transaction(actor) as ctx:
            target = editable_contact(ctx, contact)
            interaction = Interaction(
                contact_id=target.id, kind=kind, direction=direction,
                subject=clean_text(subject, "subject", 255), body=clean_text(body, "body", 20000),
                occurred_at=parse_datetime(occurred_at, "occurred_at") or ctx.now,
                duration_minutes=duration_minutes, outcome=clean_text(outcome, "outcome", 120),
                user_id=ctx.actor.user_id, opportunity_id=opportunity_id,
            )  # fmt: skip
            ctx.call("crm_interaction_before_log", interaction=interaction)
            ctx.session.add(interaction)
            ctx.session.flush()
            if target.last_activity_at is None or interaction.occurred_at > target.last_activity_at:
                target.last_activity_at = interaction.occurred_at
            ctx.audit("interaction.log", "contact", target.id, {"kind": kind, "interaction_id": interaction.id})
            ctx.call(
                "crm_interaction_logged",
                event=InteractionLogged(
                    interaction_id=interaction.id, contact_id=target.id, kind=kind,
                    user_id=interaction.user_id, occurred_at=interaction.occurred_at,
                ),
            )  # fmt: skip
        return interaction

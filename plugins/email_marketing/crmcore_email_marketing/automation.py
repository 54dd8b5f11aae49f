"""Automation: drip sequences started by lifecycle hooks, with delays, stop conditions and reminders.

A sequence listens to one hook (``crm_customer_became_dormant``, any hook a
plugin publishes whose event carries a ``contact_id``). When it fires, the
contact is enrolled and each step waits its delay as a timer in the outbox,
then sends a template or reminds the contact's owner rep (an activity with a
reminder). Before every step the stop conditions are checked: ``converted``
(a purchase since the start), ``replied`` (an inbound email logged since the
start) and ``unsubscribed`` (suppressed, do-not-contact, or no consent).
"""

from __future__ import annotations

import builtins
import contextlib
import logging
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.mail import MailMessage, queue_mail
from crmcore.models import Contact, Interaction, Purchase
from crmcore.registry import JobHandler
from crmcore.services.base import get_contact
from crmcore.validation import clean_text
from crmcore_email_marketing.campaigns import (
    compile_template,
    custom_field_names,
    page_context,
    setting,
)
from crmcore_email_marketing.models import Enrollment, Sequence, SequenceStep, Suppression, Template
from crmcore_email_marketing.rendering import TemplateProblem, contact_context
from crmcore_email_marketing.tokens import unsubscribe_url
from crmcore_email_marketing.triggers import has_spec

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM
    from crmcore.registry import JobCall

log = logging.getLogger("crmcore_email_marketing")

STEP_HANDLER = "email_marketing.sequence_step"
STOP_CONDITIONS = ("converted", "replied", "unsubscribed")
ACTIONS = ("email", "reminder")
HERE = Path(__file__).resolve().parent


def registrations() -> list[JobHandler]:
    """The sequence step timer."""
    return [JobHandler(name=STEP_HANDLER, func=step_job, help="Run one step of a sequence for one contact.")]


def parse_delay(value: Any, field: str = "delay") -> int:
    """Minutes from ``90``, ``"45m"``, ``"12h"``, ``"3d"`` or ``"2w"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        minutes = value
    else:
        text = str(value).strip().lower()
        units = {"m": 1, "h": 60, "d": 1440, "w": 10080}
        try:
            minutes = int(text[:-1]) * units[text[-1]] if text and text[-1] in units else int(text)
        except ValueError:
            raise ValidationError({field: f"{value!r} is not a delay (90, 45m, 12h, 3d, 2w)"}) from None
    if minutes < 0:
        raise ValidationError({field: "must not be negative"})
    return minutes


class SequenceService:
    """Drip sequences: ``email_marketing(crm).sequences``."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def create(
        self,
        name: str,
        *,
        trigger: str,
        steps: list[dict[str, Any]],
        stop_on: tuple[str, ...] | list[str] = STOP_CONDITIONS,
        active: bool = True,
        actor: Any = None,
    ) -> Sequence:
        """A sequence of *steps*: ``{"delay": "3d", "template": "name"}`` or ``{"delay": "1d", "remind": "Call"}``."""
        errors: dict[str, str] = {}
        try:
            name_text = clean_text(name, "name", 120, required=True)
        except ValidationError as exc:
            errors.update(exc.errors)
        allowed = setting(self.crm, "sequence_hooks")
        if trigger not in allowed:
            errors["trigger"] = (f"{trigger!r} cannot start a sequence; hooks: {', '.join(allowed)} "
                                 "(the email_marketing.sequence_hooks setting)")  # fmt: skip
        elif not has_spec(self.crm, trigger):
            errors["trigger"] = f"no enabled plugin publishes the hook {trigger!r}"
        bad = [c for c in stop_on if c not in STOP_CONDITIONS]
        if bad:
            errors["stop_on"] = f"unknown condition(s) {', '.join(bad)}; conditions: {', '.join(STOP_CONDITIONS)}"
        if not steps:
            errors["steps"] = "give at least one step"
        cleaned: list[dict[str, Any]] = []
        for index, step in enumerate(steps, start=1):
            field = f"steps.{index}"
            try:
                delay = parse_delay(step.get("delay", 0), f"{field}.delay")
            except ValidationError as exc:
                errors.update(exc.errors)
                continue
            if ("template" in step) == ("remind" in step):
                errors[field] = "give either a template (an email) or remind (a note for the owner rep)"
                continue
            cleaned.append({"delay": delay, "template": step.get("template"), "remind": step.get("remind")})
        if errors:
            raise ValidationError(errors)
        with self.crm.transaction(actor) as ctx:
            if ctx.first(Sequence, Sequence.name == name_text):
                raise Conflict(f"a sequence named {name_text!r} exists")
            sequence = Sequence(name=name_text, trigger=trigger, active=active, stop_on=list(stop_on),
                                created_at=ctx.now)  # fmt: skip
            ctx.session.add(sequence)
            ctx.session.flush()
            for position, step in enumerate(cleaned, start=1):
                template_id = None
                if step["template"] is not None:
                    from crmcore_email_marketing.campaigns import _template

                    template = _template(ctx, step["template"])
                    compile_template(ctx, template)
                    template_id = template.id
                ctx.session.add(SequenceStep(
                    sequence_id=sequence.id, position=position, delay_minutes=step["delay"],
                    action="email" if template_id else "reminder", template_id=template_id,
                    note=clean_text(step["remind"], f"steps.{position}.remind", 255) if step["remind"] else None,
                ))  # fmt: skip
            ctx.audit("sequence.create", "email_marketing_sequence", sequence.id, {"trigger": trigger})
        return sequence

    def list(self) -> list[Sequence]:
        """Every sequence, by name."""
        with self.crm.transaction(readonly=True) as ctx:
            return list(ctx.session.scalars(select(Sequence).order_by(Sequence.name)))

    def steps(self, name: str) -> builtins.list[SequenceStep]:
        """The steps of sequence *name*, in order."""
        with self.crm.transaction(readonly=True) as ctx:
            sequence = _sequence(ctx, name)
            return list(ctx.session.scalars(
                select(SequenceStep).where(SequenceStep.sequence_id == sequence.id).order_by(SequenceStep.position)
            ))  # fmt: skip

    def set_active(self, name: str, active: bool, *, actor: Any = None) -> Sequence:
        """Turn a sequence on or off (off: no new enrollments; running ones stop at their next step)."""
        with self.crm.transaction(actor) as ctx:
            sequence = _sequence(ctx, name)
            sequence.active = active
            ctx.audit("sequence.activate" if active else "sequence.deactivate", "email_marketing_sequence",
                      sequence.id, {})  # fmt: skip
            return sequence

    def enroll(self, name: str, contact: Any, *, actor: Any = None) -> Enrollment:
        """Enroll *contact* by hand (as the trigger would)."""
        with self.crm.transaction(actor) as ctx:
            sequence = _sequence(ctx, name)
            enrollment = enroll_in(ctx, sequence, get_contact(ctx, contact).id, source="manual")
            if enrollment is None:
                raise Conflict(f"the contact is already going through {sequence.name!r}")
            return enrollment

    def enrollments(self, name: str) -> builtins.list[Enrollment]:
        """The enrollments of sequence *name*."""
        with self.crm.transaction(readonly=True) as ctx:
            sequence = _sequence(ctx, name)
            return list(ctx.session.scalars(
                select(Enrollment).where(Enrollment.sequence_id == sequence.id).order_by(Enrollment.id)
            ))  # fmt: skip

    def install_example(self, which: str = "dormant", *, actor: Any = None) -> Sequence:
        """Install a shipped example: ``dormant`` re-engages customers who became dormant."""
        if which != "dormant":
            raise ValidationError({"which": "the shipped examples: dormant"})
        from crmcore_email_marketing import email_marketing

        folder = HERE / "templates" / "email_marketing" / "examples"
        templates = email_marketing(self.crm).templates
        for step in ("reengage-1", "reengage-2"):
            html = (folder / f"{step}.html").read_text(encoding="utf-8")
            subject, _, body = html.partition("\n")
            subject = subject.removeprefix("<!-- subject:").removesuffix("-->").strip()
            with contextlib.suppress(Conflict):  # installed before, perhaps edited since: keep it
                templates.create(step, subject=subject, html=body, actor=actor)
        return self.create(
            "Dormant re-engagement", trigger="crm_customer_became_dormant",
            steps=[{"delay": 0, "template": "reengage-1"}, {"delay": "7d", "template": "reengage-2"},
                   {"delay": "3d", "remind": "Call: dormant customer did not come back after two emails"}],
            stop_on=STOP_CONDITIONS, actor=actor,
        )  # fmt: skip


def _sequence(ctx: HookContext, ref: Any) -> Sequence:
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        found = ctx.session.get(Sequence, int(ref))
    else:
        found = ctx.first(Sequence, Sequence.name == str(ref).strip())
    if found is None:
        raise NotFound(f"no sequence {ref!r}")
    return found


def on_trigger(ctx: HookContext, hook: str, event: Any) -> None:
    """Enroll the event's contact in the active sequences that listen to *hook*."""
    contact_id = getattr(event, "contact_id", None)
    if not isinstance(contact_id, int):
        return
    for sequence in ctx.session.scalars(select(Sequence).where(Sequence.trigger == hook, Sequence.active)):
        enroll_in(ctx, sequence, contact_id, source=hook)


def enroll_in(ctx: HookContext, sequence: Sequence, contact_id: int, *, source: str) -> Enrollment | None:
    """Start *sequence* for a contact (again, if an earlier run ended); None when one is running."""
    enrollment = ctx.first(Enrollment, Enrollment.sequence_id == sequence.id, Enrollment.contact_id == contact_id)
    if enrollment is not None and enrollment.state == "active":
        return None
    if enrollment is None:
        enrollment = Enrollment(sequence_id=sequence.id, contact_id=contact_id, runs=1, details={})
        ctx.session.add(enrollment)
    else:
        enrollment.runs += 1
    enrollment.state, enrollment.next_position = "active", 1
    enrollment.started_at, enrollment.ended_at, enrollment.stop_reason = ctx.now, None, None
    enrollment.details = {"source": source}
    ctx.session.flush()
    _schedule_step(ctx, enrollment, 1)
    return enrollment


def _schedule_step(ctx: HookContext, enrollment: Enrollment, position: int) -> bool:
    step = ctx.first(
        SequenceStep, SequenceStep.sequence_id == enrollment.sequence_id, SequenceStep.position == position
    )
    if step is None:
        return False
    enrollment.next_position = position
    ctx.enqueue(STEP_HANDLER, {"enrollment_id": enrollment.id, "run": enrollment.runs, "position": position},
                key=f"{STEP_HANDLER}:{enrollment.id}:{enrollment.runs}:{position}",
                delay=timedelta(minutes=step.delay_minutes))  # fmt: skip
    return True


def step_job(call: JobCall) -> None:
    """Run one step: check the stop conditions, send or remind, schedule the next step."""
    crm = call.crm
    with crm.transaction() as ctx:
        enrollment = ctx.session.get(Enrollment, call.payload["enrollment_id"])
        if enrollment is None or enrollment.state != "active" or enrollment.runs != call.payload["run"]:
            return
        sequence = ctx.session.get(Sequence, enrollment.sequence_id)
        contact = ctx.session.get(Contact, enrollment.contact_id)
        assert sequence is not None
        if contact is None:
            return
        reason = "sequence turned off" if not sequence.active else stop_reason(ctx, sequence, enrollment, contact)
        if reason is not None:
            _end(ctx, enrollment, "stopped", reason)
            return
        step = ctx.first(SequenceStep, SequenceStep.sequence_id == sequence.id,
                         SequenceStep.position == call.payload["position"])  # fmt: skip
        if step is None:
            _end(ctx, enrollment, "done", None)
            return
        if step.action == "email":
            problem = _send_step(ctx, sequence, enrollment, step, contact)
            if problem is not None:
                _end(ctx, enrollment, "stopped", problem)
                return
        else:
            _remind(ctx, sequence, step, contact)
        if not _schedule_step(ctx, enrollment, step.position + 1):
            _end(ctx, enrollment, "done", None)


def _end(ctx: HookContext, enrollment: Enrollment, state: str, reason: str | None) -> None:
    enrollment.state, enrollment.stop_reason, enrollment.ended_at = state, reason, ctx.now


def stop_reason(ctx: HookContext, sequence: Sequence, enrollment: Enrollment, contact: Contact) -> str | None:
    """Why the sequence must stop for this contact now (a stop condition holds), or None."""
    since = enrollment.started_at
    conditions = set(sequence.stop_on or ())
    if "converted" in conditions and ctx.first(Purchase, Purchase.contact_id == contact.id,
                                                Purchase.purchased_at > since):  # fmt: skip
        return "converted"
    if "replied" in conditions and ctx.first(
        Interaction, Interaction.contact_id == contact.id, Interaction.kind == "email",
        Interaction.direction == "in", Interaction.occurred_at > since,
    ):  # fmt: skip
        return "replied"
    if "unsubscribed" in conditions and _unsubscribed(ctx, contact):
        return "unsubscribed"
    return None


def _unsubscribed(ctx: HookContext, contact: Contact) -> bool:
    if contact.do_not_contact or not contact.email or contact.erased_at is not None:
        return True
    if ctx.first(Suppression, Suppression.email == (contact.email_normalized or contact.email.lower())):
        return True
    if setting(ctx.crm, "consent_regime") == "opt_in":
        return not ctx.crm.consent.has(contact, "marketing", "email")
    return False


def _send_step(
    ctx: HookContext, sequence: Sequence, enrollment: Enrollment, step: SequenceStep, contact: Contact
) -> str | None:
    if _unsubscribed(ctx, contact):
        return "unsubscribed"  # never mail without consent, even when the sequence does not stop on it
    template = ctx.session.get(Template, step.template_id)
    assert template is not None and contact.email is not None
    crm = ctx.crm
    try:
        compiled = compile_template(ctx, template)
        values = contact_context(contact, custom_field_names(ctx))
        subject = compiled.render_subject(page_context(crm, values))
        unsubscribe = unsubscribe_url(crm, contact.id)
        context = page_context(crm, values, subject=subject, unsubscribe_url=unsubscribe)
        html = compiled.render_html(context)
        text = compiled.render_text(context)
    except TemplateProblem as exc:
        return "template error: " + "; ".join(exc.errors.values())[:200]
    headers = {"List-Unsubscribe": f"<{unsubscribe}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
               "X-CRM-Sequence": str(sequence.id)}  # fmt: skip
    queue_mail(ctx, MailMessage(to=contact.email, subject=subject, html=html, text=text, headers=headers,
                                sender=setting(crm, "from_address"), reply_to=setting(crm, "reply_to")),
               key=f"email_marketing.sequence:{enrollment.id}:{enrollment.runs}:{step.position}")  # fmt: skip
    return None


def _remind(ctx: HookContext, sequence: Sequence, step: SequenceStep, contact: Contact) -> None:
    """A follow-up for the contact's owner rep, with a reminder due now."""
    name = " ".join(p for p in (contact.first_name, contact.last_name) if p) or contact.email or f"#{contact.id}"
    ctx.crm.sales.add_activity(
        kind="follow_up", subject=f"{step.note or 'Follow up'} ({name}, {sequence.name})"[:255],
        contact=contact.id, owner=contact.owner_id, due_at=ctx.now, remind_at=ctx.now,
    )  # fmt: skip

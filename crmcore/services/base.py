"""What every service shares: looking records up, stage moves, scoring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select

from crmcore.errors import NotFound, ValidationError
from crmcore.i18n import N_, SCORE_QUALIFIED
from crmcore.models import Contact, LifecycleChange, User

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM
    from crmcore.events import ScoreContribution, StageChanged


class Service:
    """A group of lifecycle operations; each public method is one unit of work."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm


ContactRef = int | str | Contact
CONTACT_NOT_FOUND = N_("contact %(ref)s not found")


def get_contact(ctx: HookContext, ref: ContactRef) -> Contact:
    """Find a contact by id, email or instance; raise NotFound otherwise.

    For a user, a contact out of their reach (``crmcore.permissions``) is not found.
    """
    if isinstance(ref, Contact):
        found = ctx.session.get(Contact, ref.id)
    elif isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
        found = ctx.session.get(Contact, int(ref))
    elif isinstance(ref, str) and "@" in ref:
        found = ctx.session.scalars(select(Contact).where(Contact.email_normalized == ref.strip().lower())).first()
    else:
        raise NotFound.of(N_("contact %(ref)s not found: give an id or an email"), ref=repr(ref))
    if found is None:
        raise NotFound.of(CONTACT_NOT_FOUND, ref=repr(ref))
    if ctx.actor.user_id is not None:
        from crmcore import permissions

        permissions.require(ctx, "contacts.view")
        if not permissions.reaches(ctx, found.owner_id):
            raise NotFound.of(CONTACT_NOT_FOUND, ref=repr(ref))
    return found


def editable_contact(ctx: HookContext, ref: ContactRef) -> Contact:
    """A contact the actor may change (``contacts.edit`` and within reach); see :func:`get_contact`."""
    from crmcore import permissions

    found = get_contact(ctx, ref)
    permissions.require(ctx, "contacts.edit")
    return found


def get_user(ctx: HookContext, ref: int | str | None, field: str = "owner") -> User | None:
    """Find a user by id or email; ``None`` passes through; unknown is a ValidationError."""
    if ref is None or ref == "":
        return None
    if isinstance(ref, int) or str(ref).isdigit():
        user = ctx.session.get(User, int(ref))
    else:
        user = ctx.session.scalars(select(User).where(User.email == str(ref).strip().lower())).first()
    if user is None:
        raise ValidationError({field: f"no user {ref!r}"})
    return user


def change_stage(ctx: HookContext, contact: Contact, to_stage: str, reason: str | None) -> StageChanged:
    """Move *contact* to *to_stage*, record the move, and return the event.

    The caller fires its specific hook, then ``crm_lifecycle_stage_changed``.
    """
    from crmcore.events import StageChanged

    event = StageChanged(
        contact_id=contact.id,
        from_stage=contact.stage,
        to_stage=to_stage,
        reason=reason,
        occurred_at=ctx.now,
    )
    ctx.insert_rows(  # the history line and the audit entry: one statement on PostgreSQL
        (LifecycleChange, {"contact_id": contact.id, "from_stage": contact.stage, "to_stage": to_stage,
                           "reason": reason, "occurred_at": ctx.now, "actor_id": ctx.actor.user_id}),
        ctx.audit_row("contact.stage", "contact", contact.id,
                      {"from": contact.stage, "to": to_stage, "reason": reason}),
    )  # fmt: skip
    contact.stage = to_stage
    contact.stage_changed_at = ctx.now
    contact.updated_at = ctx.now
    return event


def score_contributions(ctx: HookContext, contact: Contact) -> list[ScoreContribution]:
    """Ask every plugin for its points on *contact*, tagging each with its plugin."""

    result: list[ScoreContribution] = []
    for plugin, answer in ctx.crm.plugins.collect_by_plugin("crm_lead_score_contributions", contact=contact, ctx=ctx):
        for item in answer:
            result.append(attrs.evolve(item, source=plugin))
    return result


def new_lead_score(ctx: HookContext, contact: Contact, touch: Mapping[str, Any] | None) -> int:
    """The score to insert a lead being captured with: what it will have once *touch* is recorded, or 0.

    Known before the INSERT only when the core's rules are the only ones (a
    plugin's may read the database, and are asked about the flushed contact)
    and the score announces nothing: from 0 it crosses no threshold and does
    not qualify the lead. Then the :func:`rescore` after the touch finds it
    unchanged, fires what it would have fired (nothing), and no ``UPDATE``
    follows the ``INSERT``; should anything have changed it meanwhile (a hook
    changing the touch), that rescore stores the difference as before.
    """
    from crmcore import builtin

    impls = ctx.crm.plugins.pm.hook.crm_lead_score_contributions.get_hookimpls()
    if len(impls) != 1 or impls[0].function is not builtin.crm_lead_score_contributions:
        return 0
    touches = [(touch["kind"], touch["occurred_at"])] if touch else []
    score = sum(c.points for c in builtin.core_score_contributions(contact, touches, ctx.now))
    settings = ctx.crm.settings
    if any((threshold > 0) != (score < threshold) for threshold in settings.score_thresholds):
        return 0
    if settings.qualify_score and score >= settings.qualify_score:
        return 0
    return score


def rescore(ctx: HookContext, contact: Contact) -> int:
    """Recompute *contact*'s score, fire threshold hooks, and qualify by rule.

    Returns the new score. Only leads and prospects are scored.
    """
    from crmcore.events import ScoreThresholdCrossed

    if contact.stage not in ("lead", "prospect"):
        return contact.score
    old = contact.score or 0
    new = sum(c.points for c in score_contributions(ctx, contact))
    if new == old:
        return new
    contact.score = new
    for threshold in ctx.crm.settings.score_thresholds:
        if (old < threshold) != (new < threshold):
            ctx.call(
                "crm_lead_score_threshold_crossed",
                event=ScoreThresholdCrossed(
                    contact_id=contact.id,
                    threshold=threshold,
                    old_score=old,
                    new_score=new,
                    occurred_at=ctx.now,
                ),
            )
    rule = ctx.crm.settings.qualify_score
    if rule and contact.stage == "lead" and new >= rule:
        from crmcore.services.leads import qualify_in

        qualify_in(ctx, contact, SCORE_QUALIFIED % {"score": new, "rule": rule})
    return new


def as_dict(obj: Any, *fields: str) -> dict[str, Any]:
    """The named attributes of *obj* as a dict."""
    return {f: getattr(obj, f) for f in fields}

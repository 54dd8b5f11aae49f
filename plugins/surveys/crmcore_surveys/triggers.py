"""Sending a survey when a hook fires: ticket solved, purchase recorded, opportunity won, any hook.

At start-up the plugin registers one listener per hook it may be triggered by:
the built-in ones that some enabled plugin publishes (``crm_ticket_solved``
only with ticketing, ``crm_campaign_message_sent`` only with email marketing)
and every hook named in the setting ``trigger_hooks``. A hook that passes an
``event`` with a ``contact_id`` works; what the event is about (ticket,
purchase, opportunity, campaign), its agent, product and channel are read from
the event's attributes.

A listener runs inside the transaction that fired the hook. It looks up the
active surveys triggered by that hook, applies each trigger's conditions and
sampling rate, and invites the contact (consent and quiet period checked);
the email itself waits in the outbox for the trigger's delay.
"""

from __future__ import annotations

import hashlib
import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crmcore import hookimpl
from crmcore.errors import ConfigError

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM

#: Triggers offered out of the box; each is listened to only when its hook is published.
BUILT_IN = ("crm_ticket_solved", "crm_purchase_recorded", "crm_opportunity_won", "crm_campaign_message_sent")
#: Event attribute holding the id of what the survey is about, and the subject kind it stands for.
SUBJECTS = (("ticket_id", "ticket"), ("purchase_id", "purchase"), ("opportunity_id", "opportunity"),
            ("campaign_id", "campaign"))  # fmt: skip
AGENT_ATTRIBUTES = ("assignee_id", "agent_id", "owner_id", "rep_id", "user_id")

_listening: weakref.WeakKeyDictionary[CRM, frozenset[str]] = weakref.WeakKeyDictionary()


def listening(crm: CRM) -> frozenset[str]:
    """The hooks this CRM listens to for survey triggers."""
    return _listening.get(crm, frozenset())


def _published(crm: CRM, hook: str) -> bool:
    caller = getattr(crm.plugins.pm.hook, hook, None)
    return caller is not None and caller.spec is not None


class TriggerListener:
    """A pluggy plugin object with one implementation per listened hook (made at start-up)."""

    def __init__(self, hooks: list[str]) -> None:
        for hook in hooks:
            setattr(self, hook, _listener(hook))


def _listener(hook: str) -> Any:
    @hookimpl(optionalhook=True)
    def listener(event: Any, ctx: HookContext) -> None:
        fire(ctx, hook, event)

    listener.__name__ = hook
    return listener


def register(crm: CRM) -> None:
    """Register the trigger listeners of *crm* (called from ``crm_startup``; imports no models)."""
    hooks_setting = crm.plugin_setting("surveys", "trigger_hooks")
    configured = [h.strip() for h in str(hooks_setting or "").split(",") if h.strip()]
    for hook in configured:
        if not _published(crm, hook):
            raise ConfigError(f"surveys.trigger_hooks: no enabled plugin publishes {hook}")
        spec = getattr(crm.plugins.pm.hook, hook).spec
        if not {"event", "ctx"} <= set(spec.argnames):
            raise ConfigError(f"surveys.trigger_hooks: {hook} passes no event (its arguments: "
                              f"{', '.join(spec.argnames)})")  # fmt: skip
    hooks = sorted({*(h for h in BUILT_IN if _published(crm, h)), *configured})
    name = f"surveys-triggers-{id(crm)}"
    if crm.plugins.pm.get_plugin(name) is None:
        crm.plugins.pm.register(TriggerListener(hooks), name=name)
    _listening[crm] = frozenset(hooks)


def sampled(rate: float, *parts: Any) -> bool:
    """A deterministic draw: the same event and survey always give the same answer."""
    if rate >= 1:
        return True
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def fire(ctx: HookContext, hook: str, event: Any) -> None:
    """Invite the event's contact to every active survey the hook triggers."""
    from crmcore.models import Contact
    from crmcore_surveys.models import Survey, SurveyState, SurveyTrigger
    from crmcore_surveys.service import invite_in

    contact_id = getattr(event, "contact_id", None)
    if contact_id is None:
        return
    triggers = ctx.session.execute(
        select(SurveyTrigger, Survey)
        .join(Survey, Survey.id == SurveyTrigger.survey_id)
        .where(SurveyTrigger.hook == hook, Survey.state == SurveyState.ACTIVE.value)
        .order_by(SurveyTrigger.id)
    ).all()
    if not triggers:
        return
    contact = ctx.session.get(Contact, contact_id)
    if contact is None:
        return
    about = describe_event(ctx, event)
    for trigger, survey in triggers:
        if any(getattr(event, name, None) != value for name, value in (trigger.conditions or {}).items()):
            continue
        if not sampled(trigger.sample_rate, survey.id, hook, about.get("subject_kind"), about.get("subject_id"),
                       contact_id, event.occurred_at if hasattr(event, "occurred_at") else ""):  # fmt: skip
            continue
        invite_in(ctx, survey, contact, source=f"hook:{hook}", delay=trigger.delay_seconds, **about)


def describe_event(ctx: HookContext, event: Any) -> dict[str, Any]:
    """What an event is about: subject kind and id, agent, product, channel."""
    from crmcore.models import Purchase, PurchaseLine

    about: dict[str, Any] = {"subject_kind": None, "subject_id": None, "agent_id": None, "product": None,
                             "channel": getattr(event, "channel", None)}  # fmt: skip
    for attribute, kind in SUBJECTS:
        value = getattr(event, attribute, None)
        if value is not None:
            about["subject_kind"], about["subject_id"] = kind, value
            break
    for attribute in AGENT_ATTRIBUTES:
        value = getattr(event, attribute, None)
        if isinstance(value, int):
            about["agent_id"] = value
            break
    product = getattr(event, "product", None)
    about["product"] = product if isinstance(product, str) else None
    if about["subject_kind"] == "purchase":
        purchase = ctx.session.get(Purchase, about["subject_id"])
        if purchase is not None:
            about["agent_id"] = about["agent_id"] or purchase.rep_id
            line = ctx.session.scalars(
                select(PurchaseLine).where(PurchaseLine.purchase_id == purchase.id).order_by(PurchaseLine.id).limit(1)
            ).first()
            if line is not None and about["product"] is None:
                from crmcore.models import Product

                found = ctx.session.get(Product, line.product_id)
                about["product"] = found.sku if found is not None else None
    elif about["subject_kind"] == "opportunity" and about["agent_id"] is None:
        from crmcore.models import Opportunity

        opportunity = ctx.session.get(Opportunity, about["subject_id"])
        about["agent_id"] = opportunity.owner_id if opportunity is not None else None
    return about

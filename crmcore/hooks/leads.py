"""Lead hooks: capture, touchpoints, qualification and scoring."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from decimal import Decimal

    from crmcore.context import HookContext
    from crmcore.events import (
        LeadCaptured,
        LeadQualified,
        ScoreContribution,
        ScoreThresholdCrossed,
        TouchpointRecorded,
    )
    from crmcore.models import Affiliate, Contact, ConversionAttribution, Touchpoint


@hookspec
def crm_lead_before_capture(contact: Contact, ctx: HookContext) -> None:
    """A new lead is about to be created.

    Runs inside the capture transaction, after validation and the duplicate
    check, before the contact is flushed: the contact has no id yet. May veto by
    raising :class:`~crmcore.errors.ValidationError` (nothing is written); may
    fill in fields. Not called when capture matched an existing contact.
    All implementations run; return values are ignored.

    :param contact: The contact about to be inserted.
    :param ctx: The unit of work: session, CRM, acting user, clock.

    .. versionadded:: 0.1
    """


@hookspec
def crm_lead_captured(event: LeadCaptured, ctx: HookContext) -> None:
    """A new lead was captured (typed in, imported or posted by a web form).

    Runs inside the capture transaction after the contact (and its first
    touchpoint, if any) is flushed; may write related rows or queue outbox jobs.
    Raising rolls the capture back. All implementations run; return values are
    ignored.

    :param event: Ids of the new contact and touchpoint, the source, the time.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_touchpoint_before_record(touchpoint: Touchpoint, ctx: HookContext) -> None:
    """A touchpoint is about to be recorded.

    Runs inside the transaction before the row is flushed. May veto with
    :class:`~crmcore.errors.ValidationError` or enrich fields (a geo lookup, a
    channel mapping). All implementations run; return values are ignored.

    :param touchpoint: The unflushed touchpoint; ``contact_id`` may be ``None``.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_touchpoint_recorded(event: TouchpointRecorded, ctx: HookContext) -> None:
    """A touchpoint was recorded: a click, open, form fill, visit, call or conversion.

    Runs inside the transaction after the touchpoint is flushed and the
    contact's score is recomputed. Raising rolls it back. All implementations
    run; return values are ignored.

    :param event: The touchpoint's id, contact, kind and time.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_lead_before_qualify(contact: Contact, reason: str, ctx: HookContext) -> None:
    """A lead is about to become a prospect.

    Runs inside the transaction; may veto with
    :class:`~crmcore.errors.ValidationError` (the lead stays a lead). All
    implementations run; return values are ignored.

    :param contact: The lead, still at stage ``lead``.
    :param reason: Why: a rep's words, or ``score >= N`` for the automatic rule.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_lead_qualified(event: LeadQualified, ctx: HookContext) -> None:
    """A lead became a prospect.

    Runs inside the transaction after the stage change is written. All
    implementations run; return values are ignored.

    :param event: The contact, the reason and its score.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_lead_score_contributions(contact: Contact, ctx: HookContext) -> list[ScoreContribution]:
    """Collect the points each plugin gives *contact*, each with its reason.

    A collector: every implementation answers, the core sums the points and
    keeps the reasons (``crm contact show --score``). Runs inside the
    transaction that changed the contact (a capture, a touchpoint) and must not
    write. Return an empty list to contribute nothing.

    :param contact: The flushed contact.
    :param ctx: The unit of work.
    :returns: A list of :class:`~crmcore.events.ScoreContribution`.

    .. versionadded:: 0.1
    """


@hookspec
def crm_lead_score_threshold_crossed(event: ScoreThresholdCrossed, ctx: HookContext) -> None:
    """A contact's score crossed one of the configured thresholds.

    Fires once per crossing, in either direction, inside the transaction that
    changed the score. All implementations run; return values are ignored.

    :param event: The threshold and the old and new scores.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_form_consent_given(
    contact_id: int, form_slug: str, purposes: list[str], proof: dict[str, Any], ctx: HookContext
) -> None:
    """A web form was submitted with its consent checkbox ticked.

    Fires inside the submission's transaction, after the lead is captured and
    its form touchpoint recorded; the consent ledger (``crm.consent``) records
    the grant here. May write; raising rolls the whole submission back.
    All implementations run; return values are ignored.

    :param contact_id: The contact who ticked the box.
    :param form_slug: The form's slug.
    :param purposes: The purposes the form's consent text covers (``marketing``, ``surveys``, …).
    :param proof: ``{"at", "ip", "source": "form:<slug>", "form_version", "text"}``: when, from
        where, which version of the form, and the exact text shown.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def crm_affiliate_commission(affiliate: Affiliate, conversion: Touchpoint, ctx: HookContext) -> Decimal | None:
    """Compute the commission *affiliate* earns for *conversion*.

    A decision: stops at the first non-None result. The core's default
    (``trylast``) applies the affiliate's rule: ``commission_percent`` of the
    conversion value plus ``commission_flat``. Runs inside the transaction that
    records the conversion; must not write.

    :param affiliate: The affiliate the conversion is credited to.
    :param conversion: The flushed conversion touchpoint (``value``, ``currency``).
    :param ctx: The unit of work.
    :returns: The commission in the conversion's currency, or ``None`` to abstain.

    .. versionadded:: 0.1
    """


@hookspec
def crm_conversion_attributed(attribution: ConversionAttribution, ctx: HookContext) -> None:
    """A conversion was recorded and credited to its first and last touch (and affiliate).

    Runs inside the transaction after the attribution row is flushed and the
    affiliate's postback (if any) is queued in the outbox. May write related
    rows. All implementations run; return values are ignored.

    :param attribution: The conversion's attribution: touchpoints, affiliate, commission.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """

"""Events: the frozen values lifecycle hooks receive. Ids, not live objects."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class LeadCaptured:
    """A new contact entered the CRM as a lead."""

    contact_id: int
    touchpoint_id: int | None
    source: str | None
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class TouchpointRecorded:
    """A touchpoint was recorded (possibly for an anonymous visitor)."""

    touchpoint_id: int
    contact_id: int | None
    kind: str
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class StageChanged:
    """A contact moved from one lifecycle stage to another (either direction)."""

    contact_id: int
    from_stage: str | None
    to_stage: str
    reason: str | None
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class LeadQualified:
    """A lead became a prospect, by a rep's decision or by its score."""

    contact_id: int
    reason: str
    score: int
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class ScoreThresholdCrossed:
    """A contact's lead score crossed a configured threshold, upwards or downwards."""

    contact_id: int
    threshold: int
    old_score: int
    new_score: int
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class CustomerConverted:
    """A lead or prospect became a customer (first purchase, won deal or by hand)."""

    contact_id: int
    from_stage: str
    purchase_id: int | None
    opportunity_id: int | None
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class PurchaseRecorded:
    """A purchase was recorded for a contact."""

    purchase_id: int
    contact_id: int
    total: Decimal
    currency: str
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class CustomerBecameDormant:
    """A customer had no purchase and no touchpoint for the dormancy period."""

    contact_id: int
    last_activity_at: datetime | None
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class InteractionLogged:
    """A rep logged a call, meeting, email or note."""

    interaction_id: int
    contact_id: int
    kind: str
    user_id: int | None
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class FeedbackRecorded:
    """A customer's feedback was stored."""

    feedback_id: int
    contact_id: int | None
    rating: int | None
    source: str
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class OpportunityCreated:
    """A new opportunity was opened."""

    opportunity_id: int
    contact_id: int | None
    stage: str
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class OpportunityStageChanged:
    """An opportunity moved between stages of its pipeline."""

    opportunity_id: int
    from_stage: str
    to_stage: str
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class OpportunityClosed:
    """An opportunity was won or lost."""

    opportunity_id: int
    contact_id: int | None
    won: bool
    amount: Decimal
    currency: str
    reason: str | None
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class ContactMerged:
    """*merged_id* was folded into *survivor_id*; its records now belong to the survivor."""

    survivor_id: int
    merged_id: int
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class ContactErased:
    """A contact's personal data was erased (aggregates kept)."""

    contact_id: int
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class ScoreContribution:
    """Points a rule gives a contact, and why. Collector hooks return lists of these."""

    points: int
    reason: str
    #: Filled in by the core with the plugin that contributed it.
    source: str = ""
    #: For the console's languages: the reason as a text marked with ``crmcore.i18n.N_``, its
    #: placeholders filled from *values* (shown as given) and *terms* (translated); None shows *reason*.
    message: str | None = None
    values: dict[str, Any] = attrs.field(factory=dict, hash=False)
    terms: dict[str, str] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class ActivityReminder:
    """An activity's reminder is due."""

    activity_id: int
    owner_id: int | None
    contact_id: int | None
    subject: str
    due_at: datetime | None
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class MailSent:
    """A queued message was handed to the mail server."""

    key: str
    recipient: str
    message_id: str
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class MailFailed:
    """The mail server refused a queued message for good (5xx)."""

    key: str
    recipient: str
    code: int | None
    error: str
    occurred_at: datetime

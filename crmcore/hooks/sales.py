"""Sales hooks: opportunities through the pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.events import (
        ActivityReminder,
        OpportunityClosed,
        OpportunityCreated,
        OpportunityStageChanged,
    )
    from crmcore.models import Opportunity, PipelineStage


@hookspec
def crm_opportunity_before_create(opportunity: Opportunity, ctx: HookContext) -> None:
    """An opportunity is about to be created.

    Runs inside the transaction before the row is flushed; may veto with
    :class:`~crmcore.errors.ValidationError`. All implementations run; return
    values are ignored.

    :param opportunity: The unflushed opportunity.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_opportunity_created(event: OpportunityCreated, ctx: HookContext) -> None:
    """An opportunity was created.

    Runs inside the transaction after the row is flushed. All implementations
    run; return values are ignored.

    :param event: The opportunity, its contact and its first stage.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_opportunity_before_stage_change(opportunity: Opportunity, to_stage: PipelineStage, ctx: HookContext) -> None:
    """An opportunity is about to move to *to_stage* (won and lost stages included).

    Runs inside the transaction; may veto with
    :class:`~crmcore.errors.ValidationError` (a required field missing for that
    stage, say). All implementations run; return values are ignored.

    :param opportunity: The opportunity, still at its current stage.
    :param to_stage: The stage it is moving to.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_opportunity_stage_changed(event: OpportunityStageChanged, ctx: HookContext) -> None:
    """An opportunity moved to another stage.

    Runs inside the transaction. When the new stage is a won or lost stage,
    :func:`crm_opportunity_won` or :func:`crm_opportunity_lost` fire after
    this. All implementations run; return values are ignored.

    :param event: The opportunity and its old and new stage keys.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_opportunity_won(event: OpportunityClosed, ctx: HookContext) -> None:
    """An opportunity was won. Its contact becomes a customer in the same transaction.

    All implementations run; return values are ignored.

    :param event: The opportunity, amount and currency.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_opportunity_lost(event: OpportunityClosed, ctx: HookContext) -> None:
    """An opportunity was lost, with the reason given.

    Runs inside the transaction. All implementations run; return values are ignored.

    :param event: The opportunity, amount, currency and reason.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_activity_reminder_due(event: ActivityReminder, ctx: HookContext) -> None:
    """An activity's reminder time came (a call to make, a follow-up to send).

    Fired by the ``core.activity_reminder`` timer inside the worker's
    transaction; notify the owner here (email, chat, console badge). Not fired
    for activities already done. All implementations run; return values are
    ignored.

    :param event: The activity, its owner, contact and due time.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """

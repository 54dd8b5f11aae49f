"""Customer hooks: conversion, purchases, stage moves, dormancy and feedback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.events import (
        CustomerBecameDormant,
        CustomerConverted,
        FeedbackRecorded,
        PurchaseRecorded,
        StageChanged,
    )
    from crmcore.models import Contact, Purchase


@hookspec
def crm_customer_before_convert(contact: Contact, ctx: HookContext) -> None:
    """A lead or prospect is about to become a customer.

    Runs inside the transaction of the purchase, the won opportunity or the
    explicit conversion; may veto with :class:`~crmcore.errors.ValidationError`,
    which rolls back the operation that caused it. All implementations run;
    return values are ignored.

    :param contact: The contact, still at its old stage.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_customer_converted(event: CustomerConverted, ctx: HookContext) -> None:
    """A lead or prospect became a customer.

    Runs inside the transaction after the stage change is written, with the
    purchase or opportunity that caused it. All implementations run; return
    values are ignored.

    :param event: The contact, its former stage, and the purchase or opportunity.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_purchase_before_record(purchase: Purchase, ctx: HookContext) -> None:
    """A purchase is about to be recorded.

    Runs inside the transaction with the purchase and its lines added but not
    flushed; may veto with :class:`~crmcore.errors.ValidationError`. All
    implementations run; return values are ignored.

    :param purchase: The unflushed purchase (its total computed).
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_purchase_recorded(event: PurchaseRecorded, ctx: HookContext) -> None:
    """A purchase was recorded (invoice it, thank the customer, survey them).

    Runs inside the transaction after the purchase is flushed, before the
    conversion hooks when it is the contact's first. All implementations run;
    return values are ignored.

    :param event: The purchase's id, contact, total and currency.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_lifecycle_stage_changed(event: StageChanged, ctx: HookContext) -> None:
    """A contact moved between lifecycle stages, forwards or back.

    Fires for every move, after the more specific hook (qualified, converted,
    dormant). Runs inside the transaction. All implementations run; return
    values are ignored.

    :param event: From and to stage, reason and time.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_customer_became_dormant(event: CustomerBecameDormant, ctx: HookContext) -> None:
    """A customer had no purchase and no touchpoint for the dormancy period.

    Fired by the scheduled dormancy check, inside the transaction that moves
    the contact to ``dormant``; start a re-engagement campaign here. All
    implementations run; return values are ignored.

    :param event: The contact and its last activity.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_feedback_recorded(event: FeedbackRecorded, ctx: HookContext) -> None:
    """Customer feedback was stored (from a survey, a rep or a plugin).

    Runs inside the transaction after the feedback row is flushed. All
    implementations run; return values are ignored.

    :param event: The feedback's id, contact, rating and source.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """

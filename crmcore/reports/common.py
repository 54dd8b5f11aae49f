"""What the core's reports share: the currency parameter, touchpoint keys, attribution rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, func, literal, select, union_all

from crmcore.i18n import N_
from crmcore.models import TouchKind, Touchpoint
from crmcore.reports.model import Param, ReportQuery
from crmcore.reports.sql import PERIODS
from crmcore.validation import currency_code

#: Touchpoints that attribution may credit: marketing channels a person came through.
#: Impressions, opens, conversions and the human touches (calls, visits, meetings) are not credited.
ATTRIBUTION_KINDS = (
    TouchKind.AD_CLICK.value,
    TouchKind.AFFILIATE_CLICK.value,
    TouchKind.LINK_CLICK.value,
    TouchKind.EMAIL_CLICK.value,
    TouchKind.FORM.value,
)


def _currency(value: str) -> str:
    from crmcore.errors import ValidationError

    try:
        return currency_code(value, "")
    except ValidationError as exc:
        raise ValueError(next(iter(exc.errors.values()))) from None


CURRENCY = Param(
    name=N_("currency"),
    help="Money figures count only amounts in this currency (default: the CRM's currency).",
    convert=_currency,
)


def currency(query: ReportQuery) -> str:
    """The currency money columns are computed in."""
    return str(query.param("currency") or query.crm.settings.currency)


#: How a touchpoint is keyed for each grouping. ``source``, ``medium`` and
#: ``campaign`` fall back to the UTM parameter when the plain field is empty.
TOUCH_GROUPINGS = (
    N_("source"), N_("medium"), N_("campaign"), N_("ad"), N_("affiliate"), N_("kind"),
    N_("utm_source"), N_("utm_medium"), N_("utm_campaign"), N_("utm_term"), N_("utm_content"),
)  # fmt: skip


def touch_key(by: str, touch: Any) -> Any:
    """The SQL expression keying a touchpoint (or an alias of it) by *by*."""
    if by in ("source", "medium", "campaign"):
        return func.coalesce(getattr(touch, by), getattr(touch, f"utm_{by}"))
    return getattr(touch, by)


def attributed_touch(
    contact_id: Any, at: Any, *, last: bool, kinds: Any = None, value: Callable[[Any], Any] | None = None
) -> Any:
    """A scalar subquery: the id of the contact's first (or last) creditable touchpoint at or before *at*.

    *value* (given the touchpoint's columns) selects something else of it. With
    one kind, ``ix_touchpoint_contact_kind_time`` (contact, kind, time, id, ad,
    affiliate) answers it alone, for the id, the ad and the affiliate.
    """
    touch = Touchpoint.__table__.alias("credited")
    kinds = kinds if kinds is not None else ATTRIBUTION_KINDS
    order = (touch.c.occurred_at.desc(), touch.c.id.desc()) if last else (touch.c.occurred_at, touch.c.id)
    return (
        select(value(touch.c) if value is not None else touch.c.id)
        .where(touch.c.contact_id == contact_id, touch.c.kind.in_(kinds), touch.c.occurred_at <= at)
        .order_by(*order)
        .limit(1)
        .scalar_subquery()
    )


def zero(label: str) -> Any:
    """A literal 0 labelled *label* (a measure a part of a ``UNION ALL`` does not supply)."""
    return literal(0).label(label)


def union(*parts: Select[Any]) -> Any:
    """``UNION ALL`` of *parts* as a named subquery."""
    return union_all(*parts).subquery("facts")


def with_periods(*names: str) -> tuple[str, ...]:
    """*names* followed by every period grouping."""
    return (*names, *PERIODS)


def order_ranked(expression: Any) -> tuple[Any, Any]:
    """ORDER BY terms: *expression* descending, NULLs last, on every database."""
    return expression.is_(None), expression.desc()

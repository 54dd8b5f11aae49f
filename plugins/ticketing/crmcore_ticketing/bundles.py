"""Bundle item kinds ticketing applies: business calendars and SLA policies.

``ticketing.sla_calendar`` (key: the calendar's name) takes
``{"timezone": "Europe/Berlin", "hours": "mon-fri 08:00-18:00", "holidays": "DE",
"region": "BE", "closed_days": ["2026-12-24"]}``; ``ticketing.sla_policy`` (key:
the policy's name) takes the arguments of :meth:`SlaService.add_policy`:
``{"targets": {...}, "conditions": {...}, "calendar": "name", "warnings": [...],
"pause_statuses": [...], "escalations": {...}}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore.bundles import BundleKind
from crmcore_ticketing.models import SlaCalendar, SlaPolicy

if TYPE_CHECKING:
    from crmcore.context import HookContext

CALENDAR_ARGS = ("timezone", "hours", "holidays", "region", "closed_days")
POLICY_ARGS = ("targets", "conditions", "calendar", "pause_statuses", "warnings", "escalations")


def _arguments(data: dict[str, Any], allowed: tuple[str, ...], kind: str) -> dict[str, Any]:
    from crmcore.errors import ValidationError

    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValidationError({"data": f"{kind} takes {', '.join(allowed)}; not {', '.join(unknown)}"})
    return dict(data)


def read_calendar(ctx: HookContext, key: str) -> dict[str, Any] | None:
    """A stored calendar's state, or ``None``."""
    row = ctx.first(SlaCalendar, SlaCalendar.name == key)
    if row is None:
        return None
    return {"timezone": row.timezone, "hours": row.hours, "holiday_country": row.holiday_country,
            "holiday_region": row.holiday_region, "closed_days": row.closed_days}  # fmt: skip


def write_calendar(ctx: HookContext, key: str, data: dict[str, Any]) -> None:
    """Add or replace a calendar through the SLA service."""
    from crmcore_ticketing import ticketing

    arguments = _arguments(data, CALENDAR_ARGS, "a calendar")
    sla = ticketing(ctx.crm).sla
    if ctx.first(SlaCalendar, SlaCalendar.name == key) is None:
        sla.add_calendar(key, **arguments)
    else:
        sla.update_calendar(key, **arguments)


def read_policy(ctx: HookContext, key: str) -> dict[str, Any] | None:
    """A stored policy's state, or ``None``."""
    row = ctx.first(SlaPolicy, SlaPolicy.name == key)
    if row is None:
        return None
    return {"active": row.active, "conditions": row.conditions, "targets": row.targets,
            "calendar_id": row.calendar_id, "pause_statuses": row.pause_statuses, "warnings": row.warnings,
            "escalations": row.escalations}  # fmt: skip


def write_policy(ctx: HookContext, key: str, data: dict[str, Any]) -> None:
    """Add or replace a policy through the SLA service."""
    from crmcore_ticketing import ticketing

    arguments = _arguments(data, POLICY_ARGS, "an SLA policy")
    sla = ticketing(ctx.crm).sla
    if ctx.first(SlaPolicy, SlaPolicy.name == key) is None:
        sla.add_policy(key, **arguments)
    else:
        sla.update_policy(key, **arguments)


KINDS = [
    BundleKind(name="ticketing.sla_calendar", read=read_calendar, write=write_calendar,
               help="a business calendar: {timezone, hours, holidays, region, closed_days}"),
    BundleKind(name="ticketing.sla_policy", read=read_policy, write=write_policy,
               help="an SLA policy: {targets, conditions, calendar, pause_statuses, warnings, escalations}"),
]  # fmt: skip

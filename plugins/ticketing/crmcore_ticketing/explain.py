"""``crm ticket sla TICKET --explain``: how each deadline was computed.

For every metric run: the policy and target (and who decided it), the
schedule (zone, weekly hours, holidays), where counting started, the
holidays and closed days and the pauses crossed, and the resulting deadline
as "start + target + time paused".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from crmcore_ticketing.calendar import BusinessCalendar, format_duration
from crmcore_ticketing.engine import clock_for, is_late, pause_statuses, policy_of, runs_of, timeline

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore_ticketing.models import SlaMetric, Ticket


def _local(value: datetime | None, clock: Any) -> str:
    if value is None:
        return "-"
    if isinstance(clock, BusinessCalendar):
        local = value.astimezone(clock.zone)
        return f"{local:%a %Y-%m-%d %H:%M} {clock.timezone} ({value:%H:%M} UTC)"
    return f"{value:%a %Y-%m-%d %H:%M} UTC"


def metric_rows(ctx: HookContext, ticket: Ticket) -> list[dict[str, Any]]:
    """One row per metric run: target, due, fulfilled, breached, late, counted and paused time."""
    rows = []
    for run in runs_of(ctx, ticket, open_only=False):
        policy = policy_of(ctx, run.policy_id)
        rows.append({
            "metric": run.metric, "cycle": run.cycle, "state": run.state, "policy": policy.name if policy else None,
            "priority": run.priority, "target_minutes": run.target_seconds // 60,
            "clock": "business" if run.business else "calendar", "target_source": run.target_source,
            "started_at": run.started_at, "due_at": run.due_at, "manual_due": run.manual_due,
            "fulfilled_at": run.fulfilled_at, "breached_at": run.breached_at,
            "late": is_late(run) if run.fulfilled_at else run.breached_at is not None,
            "elapsed_minutes": run.elapsed_seconds // 60, "paused_minutes": run.paused_seconds // 60,
            "warned": list(run.warned or []), "escalated": run.escalated,
        })  # fmt: skip
    return rows


def explain_run(ctx: HookContext, ticket: Ticket, run: SlaMetric) -> list[str]:
    """The lines explaining one run's deadline."""
    policy = policy_of(ctx, run.policy_id)
    clock = clock_for(ctx, ticket, run)
    target = timedelta(seconds=run.target_seconds)
    who = {"policy": f"policy {policy.name!r}" if policy else "no policy", "manual": "set by hand"}.get(
        run.target_source, run.target_source.replace("hook:", "plugin ")
    )
    kind = "business time" if run.business else "calendar time"
    lines = [f"{run.metric} (cycle {run.cycle}, {run.state}): target {format_duration(target)} of {kind}, "
             f"priority {run.priority}, from {who}"]  # fmt: skip
    if isinstance(clock, BusinessCalendar):
        lines.append(f"  schedule {clock.name!r}: {clock.describe()}")
    else:
        lines.append("  schedule: calendar hours, every minute counts")
    lines.append(f"  started {_local(run.started_at, clock)}")
    if isinstance(clock, BusinessCalendar):
        opening = clock.add(run.started_at, timedelta(microseconds=1)) - timedelta(microseconds=1)
        if opening > run.started_at:
            lines.append(f"  outside business hours: counting starts at the next opening, {_local(opening, clock)}")
    line = timeline(ticket, run, pause_statuses(policy))
    end = run.fulfilled_at or run.due_at or ctx.now
    for begin, stop in line.paused:
        counted = clock.between(begin, stop or ctx.now)
        lines.append(f"  paused {_local(begin, clock)} until {_local(stop, clock) if stop else 'now'}: "
                     f"{format_duration(counted)} of {kind} added to the deadline")  # fmt: skip
    if isinstance(clock, BusinessCalendar):
        for closed in clock.closed_days_between(run.started_at, max(end, run.started_at)):
            lines.append(f"  crossed {closed.day:%a %Y-%m-%d}: {closed.reason} (not counted)")
    paused = timedelta(seconds=run.paused_seconds)
    if run.manual_due:
        lines.append(f"  due {_local(run.due_at, clock)}: set by hand, it no longer moves")
    elif run.due_at is not None:
        lines.append(f"  due {_local(run.due_at, clock)} = start + {format_duration(target)} + "
                     f"{format_duration(paused)} paused ({kind})")  # fmt: skip
    else:
        lines.append("  due: none while paused (the clock resumes when the ticket does)")
    if run.breached_at is not None:
        lines.append(f"  BREACHED at {_local(run.breached_at, clock)} (stays breached)")
    if run.fulfilled_at is not None:
        late = " (late)" if is_late(run) else ""
        lines.append(f"  fulfilled {_local(run.fulfilled_at, clock)}{late}")
    counted = timedelta(seconds=run.elapsed_seconds)
    lines.append(f"  counted so far {format_duration(counted)}, paused {format_duration(paused)}")
    return lines


def explain(ctx: HookContext, ticket: Ticket) -> list[str]:
    """Every run's explanation, with the ticket's policy and contract first."""
    policy = policy_of(ctx, ticket.policy_id)
    lines = [f"{ticket.number}: policy {policy.name if policy else 'none'}, priority {ticket.priority}, "
             f"status {ticket.status}"]  # fmt: skip
    if ticket.sla_note:
        lines.append(f"note: {ticket.sla_note}")
    for run in runs_of(ctx, ticket, open_only=False):
        lines.extend(explain_run(ctx, ticket, run))
    return lines

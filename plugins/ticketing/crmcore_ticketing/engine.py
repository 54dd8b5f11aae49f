"""The SLA metric engine: starts, pauses, re-targets, fulfils and fires metric runs.

Each run of a metric (``ticketing_sla_metric``) counts time from its start on
its clock (a :class:`~crmcore_ticketing.calendar.BusinessCalendar` or calendar
hours), minus the time the ticket spent in a pausing status. Every point of a
run (warnings, the breach, escalation levels) is a threshold of that counted
time, turned into an instant by walking the run's active segments, so pausing
moves them by exactly the time spent paused and nothing is ever stepped
through minute by minute. One timer job per run (``ticketing:sla:<id>:<seq>``)
waits for its next point; the service moves or cancels it on every change.

The semantics follow Zendesk's metric model; docs/plugins/ticketing.md has
worked examples of each rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select

from crmcore_ticketing.batch import Deferred
from crmcore_ticketing.calendar import CALENDAR_HOURS, BusinessCalendar, Clock, parse_duration
from crmcore_ticketing.events import TicketSlaEvent
from crmcore_ticketing.models import PRIORITIES, SlaCalendar, SlaMetric, SlaPolicy, Status, Ticket

if TYPE_CHECKING:
    from crmcore.context import HookContext

SLA_HANDLER = "ticketing.sla"
DEFAULT_PAUSE = ("pending", "on_hold")
#: Statuses in which the resolution clock is stopped (it resumes on reopening).
STOPPED = frozenset({Status.SOLVED, Status.CLOSED})
_ZERO = timedelta(0)


@attrs.frozen
class Point:
    """A moment of a metric run: a warning, the breach, or an escalation level."""

    kind: str  # "warning", "breach", "escalation"
    label: str
    at: datetime | None
    level: int = 0


@attrs.frozen
class Timeline:
    """A metric run's active and paused segments from its start (``None`` end = still running)."""

    start: datetime
    active: list[tuple[datetime, datetime | None]]
    paused: list[tuple[datetime, datetime | None]]

    def instant_of(self, clock: Clock, counted: timedelta) -> datetime | None:
        """When *counted* time has been counted; None if that lies beyond a pause still running."""
        remaining = counted
        for begin, end in self.active:
            if end is None:
                return clock.add(begin, remaining)
            available = clock.between(begin, end)
            if available >= remaining:
                return clock.add(begin, remaining)
            remaining -= available
        return None

    def counted(self, clock: Clock, until: datetime) -> tuple[timedelta, timedelta]:
        """Counted time and paused time from the start until *until*."""
        return _sum(clock, self.active, until), _sum(clock, self.paused, until)


def _sum(clock: Clock, segments: Iterable[tuple[datetime, datetime | None]], until: datetime) -> timedelta:
    total = _ZERO
    for begin, end in segments:
        if begin >= until:
            break
        total += clock.between(begin, min(end, until) if end is not None else until)
    return total


def timeline(ticket: Ticket, run: SlaMetric, pause_statuses: Iterable[str]) -> Timeline:
    """Split *run* into active and paused segments by the ticket's status log."""
    pausing = set(pause_statuses)
    if run.metric == "resolution":
        pausing |= STOPPED
    start, end = run.started_at, run.fulfilled_at
    active: list[tuple[datetime, datetime | None]] = []
    paused: list[tuple[datetime, datetime | None]] = []
    status = Status.NEW.value
    changes: list[tuple[datetime, str]] = []
    for stamp, value in ticket.status_log or ():
        at = datetime.fromisoformat(stamp)
        if at <= start:
            status = value
        else:
            changes.append((at, value))
    cursor, is_paused = start, status in pausing
    for at, value in changes:
        if end is not None and at >= end:
            break
        now_paused = value in pausing
        if now_paused != is_paused:
            (paused if is_paused else active).append((cursor, at))
            cursor, is_paused = at, now_paused
    (paused if is_paused else active).append((cursor, end))
    active = [(a, b) for a, b in active if b is None or b > a]
    paused = [(a, b) for a, b in paused if b is None or b > a]
    return Timeline(start=start, active=active, paused=paused)


# -- lookups --------------------------------------------------------------------


def calendar_of(ctx: HookContext, calendar_id: int | None) -> Clock:
    """The clock of a calendar row (cached per unit of work), or calendar hours."""
    if calendar_id is None:
        return CALENDAR_HOURS
    key = f"ticketing:calendar:{calendar_id}"
    found = ctx.cache.get(key)
    if found is None:
        row = ctx.session.get(SlaCalendar, calendar_id)
        assert row is not None
        found = ctx.cache[key] = shared_calendar(ctx.crm, row)
    clock: Clock = found
    return clock


def shared_calendar(crm: Any, row: SlaCalendar) -> BusinessCalendar:
    """The calendar of *row*, kept on the CRM so its per-day intervals stay computed across units of work.

    Keyed by the row's content, so an edited calendar is a new entry: nothing to invalidate.
    """
    built: dict[tuple[Any, ...], BusinessCalendar] = crm.__dict__.setdefault("_ticketing_calendars", {})
    key = (row.id, row.name, row.timezone, repr(row.hours), row.holiday_country, row.holiday_region,
           tuple(row.closed_days or ()))  # fmt: skip
    found = built.get(key)
    if found is None:
        if len(built) > 256:  # edited many times over a long life: start afresh
            built.clear()
        found = built[key] = build_calendar(row)
    return found


def build_calendar(row: SlaCalendar) -> BusinessCalendar:
    """A :class:`BusinessCalendar` from its row."""
    return BusinessCalendar(
        row.timezone, row.hours, holiday_country=row.holiday_country, holiday_region=row.holiday_region,
        closed_days=row.closed_days or (), name=row.name,
    )  # fmt: skip


def policy_of(ctx: HookContext, policy_id: int | None) -> SlaPolicy | None:
    """The policy row by id (cached per unit of work)."""
    if policy_id is None:
        return None
    key = f"ticketing:policy:{policy_id}"
    if key not in ctx.cache:
        ctx.cache[key] = ctx.session.get(SlaPolicy, policy_id)
    policy: SlaPolicy | None = ctx.cache[key]
    return policy


def runs_of(ctx: HookContext, ticket: Ticket, *, open_only: bool = True) -> list[SlaMetric]:
    """The ticket's metric runs (only running or paused ones by default), oldest first."""
    query = select(SlaMetric).where(SlaMetric.ticket_id == ticket.id).order_by(SlaMetric.id)
    if open_only:
        query = query.where(SlaMetric.state.in_(("active", "paused")))
    return list(ctx.session.scalars(query))


def pause_statuses(policy: SlaPolicy | None) -> tuple[str, ...]:
    """The statuses that pause a policy's clocks (pending and on hold unless configured)."""
    if policy is None:
        return DEFAULT_PAUSE
    return tuple(policy.pause_statuses if policy.pause_statuses is not None else DEFAULT_PAUSE)


# -- targets ----------------------------------------------------------------------


@attrs.frozen
class Target:
    """How long a metric may take, on which clock, decided by whom."""

    seconds: int
    business: bool
    source: str


def target_for(ctx: HookContext, ticket: Ticket, metric: str, policy: SlaPolicy | None) -> Target | None:
    """The target of *metric* for *ticket*: a plugin's decision, else the policy's, else none."""
    spec = (policy.targets or {}).get(ticket.priority, {}).get(metric) if policy is not None else None
    business = bool(spec.get("business", True)) if spec else policy is not None and policy.calendar_id is not None
    decided = decide_target(ctx, ticket, metric, policy)
    if decided is not None:
        return Target(decided[0] * 60, business, f"hook:{decided[1]}")
    if not spec:
        return None
    return Target(int(spec["minutes"]) * 60, business, "policy")


def decide_target(ctx: HookContext, ticket: Ticket, metric: str, policy: SlaPolicy | None) -> tuple[int, str] | None:
    """Ask ``crm_ticket_sla_target`` (first answer wins); return (minutes, plugin) or None."""
    from crmcore.errors import CRMError, PluginError, ValidationError

    for impl in reversed(ctx.crm.plugins.pm.hook.crm_ticket_sla_target.get_hookimpls()):
        try:
            minutes = impl.function(ticket=ticket, metric=metric, policy=policy, ctx=ctx)
        except CRMError:
            raise
        except Exception as exc:
            raise PluginError(f"{type(exc).__name__}: {exc}", plugin=impl.plugin_name,
                              hook="crm_ticket_sla_target") from exc  # fmt: skip
        if minutes is None:
            continue
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
            raise ValidationError({"target": f"plugin {impl.plugin_name} returned {minutes!r}, not positive minutes"})
        return minutes, str(impl.plugin_name)
    return None


def clock_for(ctx: HookContext, ticket: Ticket, run: SlaMetric) -> Clock:
    """The run's clock: its calendar when it counts business hours, else calendar hours."""
    return calendar_of(ctx, run.calendar_id) if run.business else CALENDAR_HOURS


# -- the engine -------------------------------------------------------------------


class Engine:
    """SLA bookkeeping for one unit of work; the ticket service calls it on every change."""

    def __init__(self, ctx: HookContext) -> None:
        self.ctx = ctx
        self._escalating = False
        self._runs: dict[int, list[SlaMetric]] = {}

    def runs(self, ticket: Ticket, *, open_only: bool = True) -> list[SlaMetric]:
        """The ticket's runs, oldest first (loaded once per unit of work, kept current here)."""
        found = self._runs.get(ticket.id)
        if found is None:
            found = self._runs[ticket.id] = runs_of(self.ctx, ticket, open_only=False)
        return [r for r in found if r.state in ("active", "paused")] if open_only else list(found)

    def adopt(self, ticket: Ticket) -> None:
        """Know that a ticket just created has no runs yet (saves a query)."""
        self._runs.setdefault(ticket.id, [])

    def forget(self) -> None:
        """Drop what was loaded (after a savepoint rolled back)."""
        self._runs.clear()

    def preload(self, tickets: Iterable[Ticket]) -> None:
        """Load the runs of many tickets with one query per 500 (a batch about to touch them)."""
        ids = [t.id for t in tickets if t.id not in self._runs]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for ticket_id in chunk:
                self._runs[ticket_id] = []
            query = select(SlaMetric).where(SlaMetric.ticket_id.in_(chunk)).order_by(SlaMetric.id)
            for run in self.ctx.session.scalars(query):
                self._runs[run.ticket_id].append(run)

    def _ensure_id(self, run: SlaMetric) -> None:
        if run.id is None:
            self.ctx.session.flush()

    # -- starting and stopping ---------------------------------------------------

    def start(self, ticket: Ticket, metric: str, at: datetime) -> SlaMetric | None:
        """Start a run of *metric* at *at* when the ticket's policy (or a plugin) sets a target."""
        policy = policy_of(self.ctx, ticket.policy_id)
        target = target_for(self.ctx, ticket, metric, policy)
        if target is None:
            return None
        existing = self.runs(ticket, open_only=False)
        cycle = 1 + sum(1 for r in existing if r.metric == metric)
        calendar_of(self.ctx, self._calendar_id(ticket, policy))  # load before the run joins the session
        calendar_id = self._calendar_id(ticket, policy) if target.business else None
        run = SlaMetric(
            ticket_id=ticket.id, metric=metric, cycle=cycle, policy_id=ticket.policy_id, priority=ticket.priority,
            target_seconds=target.seconds, business=target.business and calendar_id is not None,
            calendar_id=calendar_id, target_source=target.source, state="active", started_at=at,
            manual_due=False, elapsed_seconds=0, paused_seconds=0, warned=[], escalated=0, timer_seq=0,
        )  # fmt: skip
        self.ctx.session.add(run)
        existing_runs = self._runs.setdefault(ticket.id, existing)
        existing_runs.append(run)
        self.refresh(ticket, run)
        return run

    def _calendar_id(self, ticket: Ticket, policy: SlaPolicy | None) -> int | None:
        """The contract's hours of cover win over the policy's calendar."""
        if ticket.contract_id is not None:
            from crmcore_ticketing.models import Contract

            contract = self.ctx.session.get(Contract, ticket.contract_id)
            if contract is not None and contract.calendar_id is not None:
                return contract.calendar_id
        return policy.calendar_id if policy is not None else None

    def fulfil(self, ticket: Ticket, run: SlaMetric, at: datetime) -> None:
        """Mark *run* met at *at* (late when after its deadline) and stop its timer."""
        self.refresh(ticket, run, fire=True)
        run.fulfilled_at = at
        run.state = "fulfilled"
        self._snapshot(ticket, run, at)
        self._schedule(run, None)
        self._fire("crm_ticket_sla_fulfilled", ticket, run, late=is_late(run))

    def cancel(self, run: SlaMetric) -> None:
        """Drop a run that no longer has a target (a policy change)."""
        run.state = "cancelled"
        self._schedule(run, None)

    def reopen(self, ticket: Ticket, run: SlaMetric) -> None:
        """Resume a fulfilled resolution run; the solved time counts as stopped."""
        run.fulfilled_at = None
        run.state = "active"
        self.refresh(ticket, run)

    # -- recomputing -------------------------------------------------------------

    def retarget(self, ticket: Ticket) -> None:
        """Re-target every open run from its original start after a priority or policy change."""
        policy = policy_of(self.ctx, ticket.policy_id)
        have = set()
        for run in self.runs(ticket):
            target = target_for(self.ctx, ticket, run.metric, policy)
            if target is None:
                self.cancel(run)
                continue
            have.add(run.metric)
            run.policy_id, run.priority = ticket.policy_id, ticket.priority
            if not run.manual_due:
                run.target_seconds, run.target_source = target.seconds, target.source
                calendar_id = self._calendar_id(ticket, policy) if target.business else None
                run.calendar_id, run.business = calendar_id, target.business and calendar_id is not None
            self.refresh(ticket, run)
        if ticket.status not in STOPPED:
            if "resolution" not in have and not self._ever(ticket, "resolution"):
                self.start(ticket, "resolution", ticket.created_at)
            if "first_reply" not in have and ticket.first_reply_at is None and not self._ever(ticket, "first_reply"):
                self.start(ticket, "first_reply", ticket.created_at)
        self.update_next_due(ticket)

    def _ever(self, ticket: Ticket, metric: str) -> bool:
        return any(r.metric == metric and r.state != "cancelled" for r in self.runs(ticket, open_only=False))

    def refresh(self, ticket: Ticket, run: SlaMetric, *, fire: bool = True) -> None:
        """Recompute *run*'s deadline and snapshot, fire points already reached, schedule the next."""
        ctx = self.ctx
        now = ctx.now
        policy = policy_of(ctx, run.policy_id)
        clock = clock_for(ctx, ticket, run)
        line = timeline(ticket, run, pause_statuses(policy))
        target = timedelta(seconds=run.target_seconds)
        if not run.manual_due:
            run.due_at = line.instant_of(clock, target)
        if run.state in ("active", "paused"):
            running = line.active and line.active[-1][1] is None
            run.state = "active" if running else "paused"
        self._snapshot(ticket, run, run.fulfilled_at or now, line, clock)
        if run.state not in ("active", "paused"):
            return
        points = self.points(ticket, run, line, clock, policy)
        due_points = [p for p in points if p.at is not None and p.at <= now]
        if fire and due_points:
            breach_passed = any(p.kind == "breach" for p in due_points)
            actions = []
            for point in sorted(due_points, key=lambda p: (p.at, p.level)):
                if point.kind == "warning":
                    run.warned = [*run.warned, point.label]
                    if not breach_passed:
                        self._fire("crm_ticket_sla_warning", ticket, run, point=point.label)
                elif point.kind == "breach":
                    run.breached_at = point.at
                    self._history(ticket, f"sla.{run.metric}", None, f"breached (due {_iso(point.at)})")
                    self._fire("crm_ticket_sla_breached", ticket, run)
                else:
                    run.escalated = point.level
                    actions.append(point)
            for point in actions:
                self._escalate(ticket, run, policy, point)
            points = [p for p in points if p not in due_points]
        upcoming = [p.at for p in points if p.at is not None and p.at > now]
        self._schedule(run, min(upcoming) if upcoming and run.state == "active" else None)

    def points(
        self, ticket: Ticket, run: SlaMetric, line: Timeline, clock: Clock, policy: SlaPolicy | None
    ) -> list[Point]:
        """The run's points not reached yet by its bookkeeping: warnings, breach, escalations."""
        target = timedelta(seconds=run.target_seconds)
        result: list[Point] = []

        def at(counted: timedelta) -> datetime | None:
            if run.manual_due:  # a manual deadline is fixed: points sit around it in calendar time
                assert run.due_at is not None
                return run.due_at + (counted - target)
            return line.instant_of(clock, counted)

        if run.breached_at is None:
            for label in (policy.warnings if policy is not None else None) or ():
                if label in run.warned:
                    continue
                counted = warning_threshold(label, target)
                result.append(Point("warning", label, at(counted)))
            result.append(Point("breach", "breach", run.due_at))
        ladder = (policy.escalations or {}).get(run.metric, []) if policy is not None else []
        for level, step in enumerate(ladder, start=1):
            if level > run.escalated:
                result.append(Point("escalation", f"level {level}", at(target + parse_duration(step["after"])), level))
        return result

    def _snapshot(
        self, ticket: Ticket, run: SlaMetric, until: datetime, line: Timeline | None = None, clock: Clock | None = None
    ) -> None:
        line = line or timeline(ticket, run, pause_statuses(policy_of(self.ctx, run.policy_id)))
        clock = clock or clock_for(self.ctx, ticket, run)
        counted, paused = line.counted(clock, until)
        run.elapsed_seconds, run.paused_seconds = int(counted.total_seconds()), int(paused.total_seconds())

    def update_next_due(self, ticket: Ticket) -> None:
        """Keep ``ticket.next_due_at``: the earliest deadline of its running metrics."""
        dues = [r.due_at for r in self.runs(ticket) if r.state == "active" and r.due_at is not None]
        next_due = min(dues) if dues else None
        if next_due != ticket.next_due_at:
            ticket.next_due_at = next_due

    # -- timers and hooks --------------------------------------------------------

    def _schedule(self, run: SlaMetric, at: datetime | None) -> None:
        """Keep exactly one pending timer per run, at its next point (or none)."""
        if at == run.timer_at:
            return
        deferred = Deferred.of(self.ctx)
        if deferred is not None and deferred.holds(run):  # its timer is not written yet: just move it
            run.timer_at = at
            if at is None:
                deferred.drop_timer(run)
            return
        key = f"{SLA_HANDLER}:{run.id}:{run.timer_seq}"
        if at is None:
            self.ctx.cancel_jobs(key)
            run.timer_at = None
            return
        if run.timer_at is not None and self.ctx.reschedule_job(key, at):
            run.timer_at = at
            return
        run.timer_seq += 1
        run.timer_at = at
        if deferred is not None:
            deferred.add_timer(run)
            return
        self._ensure_id(run)
        self.ctx.enqueue(SLA_HANDLER, {"metric_id": run.id, "seq": run.timer_seq},
                         key=f"{SLA_HANDLER}:{run.id}:{run.timer_seq}", due_at=at)  # fmt: skip

    def _fire(self, hook: str, ticket: Ticket, run: SlaMetric, **extra: Any) -> None:
        self._ensure_id(run)
        self.ctx.call(
            hook,
            event=TicketSlaEvent(
                ticket_id=ticket.id, contact_id=ticket.requester_id, metric=run.metric, metric_id=run.id,
                policy_id=run.policy_id, due_at=run.due_at, occurred_at=self.ctx.now, **extra,
            ),
        )  # fmt: skip

    def _history(self, ticket: Ticket, field: str, old: str | None, new: str | None) -> None:
        from crmcore_ticketing.tickets import record_change

        record_change(self.ctx, ticket, field, old, new)

    def _escalate(self, ticket: Ticket, run: SlaMetric, policy: SlaPolicy | None, point: Point) -> None:
        """Run one level of the escalation ladder: reassign, raise priority, or notify."""
        assert policy is not None
        step = policy.escalations[run.metric][point.level - 1]
        action = step["action"]
        self._history(ticket, f"sla.{run.metric}", None, f"escalation level {point.level}: {action}")
        from crmcore_ticketing import tickets

        if action == "reassign":
            tickets.assign_in(self.ctx, ticket, step.get("to"), step.get("team"), reason=f"escalation {point.label}")
        elif action == "raise_priority":
            index = PRIORITIES.index(ticket.priority)
            if index + 1 < len(PRIORITIES) and not self._escalating:
                self._escalating = True
                try:
                    tickets.change_fields_in(self.ctx, ticket, {"priority": PRIORITIES[index + 1]})
                finally:
                    self._escalating = False
        elif action == "notify":
            tickets.notify_escalation(self.ctx, ticket, run, step, point.level)
        self._fire("crm_ticket_sla_escalated", ticket, run, level=point.level, action=action)


def warning_threshold(label: str, target: timedelta) -> timedelta:
    """The counted time of a warning point: ``"80%"`` of the target or ``"30m"`` before it."""
    if label.endswith("%"):
        return target * int(label[:-1]) / 100
    return max(target - parse_duration(label, "warnings"), _ZERO)


def is_late(run: SlaMetric) -> bool:
    """True when a met run was met after its deadline (or had breached)."""
    if run.breached_at is not None:
        return True
    return run.fulfilled_at is not None and run.due_at is not None and run.fulfilled_at > run.due_at


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else "-"


def validate_warning(label: str) -> str:
    """Check a warning point (``"30m"``, ``"2h"``, ``"80%"``); return it normalized."""
    from crmcore.errors import ValidationError

    text = str(label).strip().lower()
    if text.endswith("%"):
        if not text[:-1].isdigit() or not 0 < int(text[:-1]) < 100:
            raise ValidationError({"warnings": f"{label!r}: a percentage of the target is between 1% and 99%"})
        return text
    if parse_duration(text, "warnings") <= _ZERO:
        raise ValidationError({"warnings": f"{label!r}: a warning comes a positive time before the breach"})
    return text


__all__ = ["SLA_HANDLER", "Engine", "Point", "Target", "Timeline", "is_late", "timeline", "warning_threshold"]

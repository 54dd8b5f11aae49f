"""SLA calendars and policies, service contracts, and which policy a ticket gets."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select

from crmcore.errors import NotFound, ValidationError
from crmcore.services.base import ContactRef, Service, get_contact, get_user
from crmcore.validation import clean_text, country_code, parse_date
from crmcore_ticketing.calendar import (
    BusinessCalendar,
    holiday_calendar,
    parse_duration,
    parse_hours,
    zone,
)
from crmcore_ticketing.engine import validate_warning
from crmcore_ticketing.models import (
    CATEGORIES,
    CHANNELS,
    METRICS,
    PRIORITIES,
    Contract,
    SlaCalendar,
    SlaPolicy,
    Status,
    Ticket,
)

if TYPE_CHECKING:
    from crmcore.context import HookContext

CONDITION_KEYS = ("priority", "channel", "category", "tier", "organization")
ESCALATION_ACTIONS = ("reassign", "raise_priority", "notify")
PAUSABLE = (Status.PENDING.value, Status.ON_HOLD.value)


def get_calendar(ctx: HookContext, ref: int | str, field: str = "calendar") -> SlaCalendar:
    """A calendar by id or name; a ValidationError naming *field* when unknown."""
    row = (
        ctx.session.get(SlaCalendar, int(ref))
        if isinstance(ref, int) or str(ref).isdigit()
        else ctx.first(SlaCalendar, SlaCalendar.name == str(ref).strip())
    )
    if row is None:
        raise ValidationError({field: f"no SLA calendar {ref!r}"})
    return row


def get_policy(ctx: HookContext, ref: int | str) -> SlaPolicy:
    """A policy by id or name; NotFound otherwise."""
    row = (
        ctx.session.get(SlaPolicy, int(ref))
        if isinstance(ref, int) or str(ref).isdigit()
        else ctx.first(SlaPolicy, SlaPolicy.name == str(ref).strip())
    )
    if row is None:
        raise NotFound(f"no SLA policy {ref!r}")
    return row


def _iso_days(days: Iterable[str | date]) -> list[str]:
    """ISO dates, sorted and unique; a ValidationError for anything else."""
    parsed = [parse_date(d, "closed_days") for d in days]
    return sorted({d.isoformat() for d in parsed if d is not None})


def shadows(earlier: Mapping[str, list[Any]], later: Mapping[str, list[Any]]) -> bool:
    """True when every ticket *later*'s conditions match is matched by *earlier* first."""
    return all(key in later and set(later[key]) <= set(values) for key, values in earlier.items())


def describe_conditions(conditions: Mapping[str, list[Any]]) -> str:
    """``priority in (urgent, high) and channel in (email)``, or ``every ticket``."""
    if not conditions:
        return "every ticket"
    return " and ".join(f"{k} in ({', '.join(map(str, v))})" for k, v in conditions.items())


class SlaService(Service):
    """Business calendars and SLA policies: ``ticketing(crm).sla``."""

    # -- calendars -----------------------------------------------------------------

    def add_calendar(
        self,
        name: str,
        *,
        timezone: str,
        hours: str | Mapping[str, Any],
        holidays: str | None = None,
        region: str | None = None,
        closed_days: Iterable[str | date] = (),
        actor: Any = None,
    ) -> SlaCalendar:
        """Add a business calendar; refused without open hours or with an unknown zone.

        *hours* is ``"mon-fri 09:00-12:00,13:00-17:00"`` (several intervals a day,
        none crossing midnight); *holidays* a country code for the ``holidays``
        library, *region* its subdivision; *closed_days* extra ISO dates.
        """
        values = self._clean_calendar(name, timezone, hours, holidays, region, closed_days)
        with self.crm.transaction(actor) as ctx:
            if ctx.first(SlaCalendar, SlaCalendar.name == values["name"]):
                raise ValidationError({"name": f"a calendar named {values['name']!r} exists"})
            row = SlaCalendar(created_at=ctx.now, **values)
            ctx.session.add(row)
            ctx.session.flush()
            ctx.audit("ticketing.calendar.add", "ticketing_sla_calendar", row.id, {"name": row.name})
            return row

    def update_calendar(
        self,
        name: str,
        *,
        timezone: str,
        hours: str | Mapping[str, Any],
        holidays: str | None = None,
        region: str | None = None,
        closed_days: Iterable[str | date] = (),
        actor: Any = None,
    ) -> SlaCalendar:
        """Replace a calendar's hours, zone, holidays and closed days (checked as :meth:`add_calendar`).

        Open SLA clocks keep the deadlines they have; new ones follow the new hours.
        """
        values = self._clean_calendar(name, timezone, hours, holidays, region, closed_days)
        with self.crm.transaction(actor) as ctx:
            row = get_calendar(ctx, name)
            for key, value in values.items():
                setattr(row, key, value)
            ctx.audit("ticketing.calendar.update", "ticketing_sla_calendar", row.id, {"name": row.name})
            return row

    @staticmethod
    def _clean_calendar(
        name: str,
        timezone: str,
        hours: str | Mapping[str, Any],
        holidays: str | None,
        region: str | None,
        closed_days: Iterable[str | date],
    ) -> dict[str, Any]:
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        for check in (
            lambda: values.__setitem__("name", clean_text(name, "name", 120, required=True)),
            lambda: zone(timezone),
            lambda: values.__setitem__("hours", parse_hours(hours)),
            lambda: values.__setitem__("country", country_code(holidays, "holidays")),
            lambda: values.__setitem__("closed", _iso_days(closed_days)),
        ):
            try:
                check()
            except ValidationError as exc:
                errors.update(exc.errors)
        if region and not values.get("country"):
            errors["region"] = "a holiday region needs a holiday country (--holidays)"
        elif values.get("country"):
            try:
                holiday_calendar(values["country"], region)
            except ValidationError as exc:
                errors.update(exc.errors)
        if errors:
            raise ValidationError(errors)
        return {
            "name": values["name"],
            "timezone": timezone,
            "hours": {k: [list(i) for i in v] for k, v in values["hours"].items()},
            "holiday_country": values.get("country"),
            "holiday_region": region or None,
            "closed_days": values["closed"],
        }

    def add_closed_days(self, calendar: int | str, days: Iterable[str | date], *, actor: Any = None) -> SlaCalendar:
        """Close a calendar on extra days (a company event, an office move)."""
        parsed = _iso_days(days)
        with self.crm.transaction(actor) as ctx:
            row = get_calendar(ctx, calendar)
            row.closed_days = sorted({*row.closed_days, *parsed})
            ctx.audit("ticketing.calendar.close", "ticketing_sla_calendar", row.id, {"days": parsed})
            return row

    def calendars(self) -> list[SlaCalendar]:
        """Every calendar, by name."""
        with self.crm.transaction() as ctx:
            return list(ctx.session.scalars(select(SlaCalendar).order_by(SlaCalendar.name)))

    def calendar(self, ref: int | str) -> BusinessCalendar:
        """The :class:`BusinessCalendar` of a stored calendar (to compute with)."""
        from crmcore_ticketing.engine import build_calendar

        with self.crm.transaction() as ctx:
            return build_calendar(get_calendar(ctx, ref))

    # -- policies ------------------------------------------------------------------

    def add_policy(
        self,
        name: str,
        *,
        targets: Mapping[str, Mapping[str, Any]],
        conditions: Mapping[str, Iterable[Any]] | None = None,
        calendar: int | str | None = None,
        pause_statuses: Iterable[str] | None = None,
        warnings: Iterable[str] = (),
        escalations: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
        position: int | None = None,
        actor: Any = None,
    ) -> SlaPolicy:
        """Add an SLA policy; overlapping or contradictory policies are refused with the reason.

        *targets* maps priority (or ``"*"`` for every priority) to metric to a
        duration: ``{"urgent": {"first_reply": "1h", "resolution": "8h"}}``.
        Targets count business hours on *calendar*; write ``"4h@calendar"``
        (or a dict ``{"minutes": 240, "business": False}``) for calendar hours.
        *conditions* (priority, channel, category, tier, organization) say
        which tickets it applies to; none makes it the catch-all default.
        """
        with self.crm.transaction(actor) as ctx:
            values = self._clean_policy(ctx, name, targets, conditions, calendar, pause_statuses, warnings,
                                        escalations, new=True)  # fmt: skip
            existing = list(ctx.session.scalars(select(SlaPolicy).where(SlaPolicy.active).order_by(SlaPolicy.position)))
            if position is None:
                catch_all = next((p for p in existing if not p.conditions), None)
                position = catch_all.position if catch_all and values["conditions"] else len(existing) + 1
            position = max(1, min(position, len(existing) + 1))
            self._overlaps(values["name"], values["conditions"], position, existing)
            for other in existing:
                if other.position >= position:
                    other.position += 1
            policy = SlaPolicy(position=position, active=True, created_at=ctx.now, **values)
            ctx.session.add(policy)
            ctx.session.flush()
            ctx.audit("ticketing.policy.add", "ticketing_sla_policy", policy.id, {"name": policy.name,
                      "position": position})  # fmt: skip
            return policy

    def update_policy(
        self,
        name: str,
        *,
        targets: Mapping[str, Mapping[str, Any]],
        conditions: Mapping[str, Iterable[Any]] | None = None,
        calendar: int | str | None = None,
        pause_statuses: Iterable[str] | None = None,
        warnings: Iterable[str] = (),
        escalations: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
        actor: Any = None,
    ) -> SlaPolicy:
        """Replace a policy's conditions, targets, calendar, pauses, warnings and escalations.

        Checked as :meth:`add_policy`; the policy keeps its position. Running SLA
        clocks keep their deadlines; tickets opened from now on get the new targets.
        """
        with self.crm.transaction(actor) as ctx:
            policy = get_policy(ctx, name)
            values = self._clean_policy(ctx, name, targets, conditions, calendar, pause_statuses, warnings,
                                        escalations, new=False)  # fmt: skip
            active = select(SlaPolicy).where(SlaPolicy.active, SlaPolicy.id != policy.id).order_by(SlaPolicy.position)
            others = list(ctx.session.scalars(active))
            self._overlaps(values["name"], values["conditions"], policy.position, others)
            for key, value in values.items():
                setattr(policy, key, value)
            ctx.audit("ticketing.policy.update", "ticketing_sla_policy", policy.id, {"name": policy.name})
            return policy

    def _clean_policy(
        self,
        ctx: HookContext,
        name: str,
        targets: Mapping[str, Mapping[str, Any]],
        conditions: Mapping[str, Iterable[Any]] | None,
        calendar: int | str | None,
        pause_statuses: Iterable[str] | None,
        warnings: Iterable[str],
        escalations: Mapping[str, Iterable[Mapping[str, Any]]] | None,
        *,
        new: bool,
    ) -> dict[str, Any]:
        errors: dict[str, str] = {}
        clean_name = None
        try:
            clean_name = clean_text(name, "name", 120, required=True)
        except ValidationError as exc:
            errors.update(exc.errors)
        clean_conditions = self._conditions(conditions or {}, errors)
        calendar_row = None
        if calendar not in (None, ""):
            try:
                calendar_row = get_calendar(ctx, calendar)
            except ValidationError as exc:
                errors.update(exc.errors)
        clean_targets = self._targets(targets, calendar_row is not None, errors)
        clean_warnings: list[str] = []
        for label in warnings:
            try:
                clean_warnings.append(validate_warning(label))
            except ValidationError as exc:
                errors.update(exc.errors)
        pauses = list(PAUSABLE if pause_statuses is None else pause_statuses)
        bad = [s for s in pauses if s not in PAUSABLE]
        if bad:
            errors["pause_statuses"] = f"only {' and '.join(PAUSABLE)} can pause the clocks, not {', '.join(bad)}"
        clean_escalations = self._escalations(ctx, escalations or {}, errors)
        if not errors:
            self._contradictions(clean_conditions, clean_targets, clean_warnings, clean_escalations, errors)
        if new and clean_name and ctx.first(SlaPolicy, SlaPolicy.name == clean_name):
            errors["name"] = f"a policy named {clean_name!r} exists"
        if errors:
            raise ValidationError(errors)
        return {
            "name": clean_name, "conditions": clean_conditions, "targets": clean_targets,
            "calendar_id": calendar_row.id if calendar_row else None, "pause_statuses": pauses,
            "warnings": clean_warnings, "escalations": clean_escalations,
        }  # fmt: skip

    @staticmethod
    def _conditions(conditions: Mapping[str, Iterable[Any]], errors: dict[str, str]) -> dict[str, list[Any]]:
        allowed = {"priority": PRIORITIES, "channel": CHANNELS, "category": CATEGORIES}
        clean: dict[str, list[Any]] = {}
        for key, raw in conditions.items():
            if key not in CONDITION_KEYS:
                errors[f"conditions.{key}"] = f"unknown condition; conditions: {', '.join(CONDITION_KEYS)}"
                continue
            values = [raw] if isinstance(raw, str | int) else list(raw)
            if not values:
                errors[f"conditions.{key}"] = "lists no values, so the policy could never apply"
                continue
            if key == "organization":
                try:
                    values = sorted({int(v) for v in values})
                except (TypeError, ValueError):
                    errors[f"conditions.{key}"] = "organization ids are numbers"
                    continue
            else:
                values = sorted({str(v).strip().lower() for v in values})
            if key in allowed:
                unknown = [v for v in values if v not in allowed[key]]
                if unknown:
                    errors[f"conditions.{key}"] = (
                        f"unknown {key} {', '.join(unknown)}; one of {', '.join(allowed[key])}"
                    )
            clean[key] = values
        return {k: clean[k] for k in CONDITION_KEYS if k in clean}

    @staticmethod
    def _targets(
        targets: Mapping[str, Mapping[str, Any]], has_calendar: bool, errors: dict[str, str]
    ) -> dict[str, dict[str, dict[str, Any]]]:
        clean: dict[str, dict[str, dict[str, Any]]] = {}
        if not targets:
            errors["targets"] = "a policy needs at least one target"
            return clean
        expanded: dict[str, dict[str, Any]] = {}
        for priority, metrics in targets.items():
            for name in PRIORITIES if priority == "*" else [priority]:
                expanded.setdefault(name, {}).update(metrics)
        for priority, metrics in expanded.items():
            if priority not in PRIORITIES:
                errors["targets"] = f"unknown priority {priority!r}; priorities: {', '.join(PRIORITIES)}"
                continue
            for metric, raw in metrics.items():
                field = f"targets.{priority}.{metric}"
                if metric not in METRICS:
                    errors[field] = f"unknown metric; metrics: {', '.join(METRICS)}"
                    continue
                if isinstance(raw, Mapping):
                    minutes, business = raw.get("minutes"), raw.get("business", has_calendar)
                else:
                    text = str(raw).strip().lower()
                    business = has_calendar and not text.endswith("@calendar")
                    try:
                        minutes = int(parse_duration(text.removesuffix("@calendar"), field).total_seconds() // 60)
                    except ValidationError as exc:
                        errors.update(exc.errors)
                        continue
                if not isinstance(minutes, int) or minutes <= 0:
                    errors[field] = "a target is a positive number of minutes"
                    continue
                if business and not has_calendar:
                    errors[field] = "counts business hours, but the policy has no calendar"
                    continue
                clean.setdefault(priority, {})[metric] = {"minutes": minutes, "business": bool(business)}
        return clean

    @staticmethod
    def _escalations(
        ctx: HookContext, escalations: Mapping[str, Iterable[Mapping[str, Any]]], errors: dict[str, str]
    ) -> dict[str, list[dict[str, Any]]]:
        clean: dict[str, list[dict[str, Any]]] = {}
        for metric, steps in escalations.items():
            if metric not in METRICS:
                errors[f"escalations.{metric}"] = f"unknown metric; metrics: {', '.join(METRICS)}"
                continue
            previous = timedelta(-1)
            for level, step in enumerate(steps, start=1):
                field = f"escalations.{metric}.{level}"
                action = step.get("action")
                if action not in ESCALATION_ACTIONS:
                    errors[field] = f"unknown action {action!r}; actions: {', '.join(ESCALATION_ACTIONS)}"
                    continue
                try:
                    after = parse_duration(str(step.get("after", "0")), field)
                except ValidationError as exc:
                    errors.update(exc.errors)
                    continue
                if after <= previous:
                    errors[field] = "each level comes later after the breach than the one before"
                previous = after
                entry: dict[str, Any] = {"after": str(step.get("after", "0")), "action": action}
                if action == "reassign":
                    if not step.get("to") and not step.get("team"):
                        errors[field] = "reassign needs a user (to) or a team"
                    try:
                        user = get_user(ctx, step.get("to"), field)
                        entry["to"] = user.email if user else None
                    except ValidationError as exc:
                        errors.update(exc.errors)
                    if step.get("team"):
                        entry["team"] = str(step["team"])
                if action == "notify" and step.get("to"):
                    entry["to"] = str(step["to"])
                clean.setdefault(metric, []).append(entry)
        return clean

    @staticmethod
    def _contradictions(
        conditions: dict[str, list[Any]],
        targets: dict[str, dict[str, dict[str, Any]]],
        warnings: list[str],
        escalations: dict[str, list[dict[str, Any]]],
        errors: dict[str, str],
    ) -> None:
        if "priority" in conditions:
            outside = sorted(set(targets) - set(conditions["priority"]))
            if outside:
                errors["targets"] = (
                    f"targets for priority {', '.join(outside)}, but the policy only applies to "
                    f"priority {', '.join(conditions['priority'])}"
                )
        for label in warnings:
            if label.endswith("%"):
                continue
            early = parse_duration(label)
            for priority, metrics in targets.items():
                for metric, spec in metrics.items():
                    if early >= timedelta(minutes=spec["minutes"]):
                        errors["warnings"] = (
                            f"the {label} warning would come before the {priority} {metric} target of "
                            f"{spec['minutes']} minutes starts"
                        )
        for metric in escalations:
            if not any(metric in m for m in targets.values()):
                errors[f"escalations.{metric}"] = "escalates a metric the policy sets no target for"

    @staticmethod
    def _overlaps(name: str, conditions: dict[str, list[Any]], position: int, existing: list[SlaPolicy]) -> None:
        for other in existing:
            if other.position < position and shadows(other.conditions or {}, conditions):
                raise ValidationError({"conditions": (
                    f"policy {name!r} would never apply: {other.name!r} (position {other.position}) comes first and "
                    f"applies to {describe_conditions(other.conditions)}, which covers every ticket it would match"
                )})  # fmt: skip
            if other.position >= position and shadows(conditions, other.conditions or {}):
                raise ValidationError({"conditions": (
                    f"policy {name!r} at position {position} would hide {other.name!r}: it applies to "
                    f"{describe_conditions(conditions)}, which covers every ticket {other.name!r} matches"
                )})  # fmt: skip

    def policies(self) -> list[SlaPolicy]:
        """The active policies in the order they are tried."""
        with self.crm.transaction() as ctx:
            return list(ctx.session.scalars(select(SlaPolicy).where(SlaPolicy.active).order_by(SlaPolicy.position)))

    def policy(self, ref: int | str) -> SlaPolicy:
        """One policy by id or name."""
        with self.crm.transaction() as ctx:
            return get_policy(ctx, ref)


# -- matching -------------------------------------------------------------------------


def contract_for(ctx: HookContext, ticket: Ticket) -> tuple[Contract | None, str | None]:
    """The requester's (or organization's) contract in force today, or the expired one as a note."""
    if "ticketing:contracts" not in ctx.cache:
        ctx.cache["ticketing:contracts"] = ctx.scalar(select(Contract.id).limit(1)) is not None
    if not ctx.cache["ticketing:contracts"]:
        return None, None
    today = ctx.now.date()
    owners = [Contract.contact_id == ticket.requester_id]
    if ticket.organization_id is not None:
        owners.append(Contract.organization_id == ticket.organization_id)
    rows = list(ctx.session.scalars(select(Contract).where(or_(*owners)).order_by(Contract.starts_on.desc())))
    active = [c for c in rows if c.starts_on <= today and (c.ends_on is None or c.ends_on >= today)]
    if active:
        for contract in active:
            if ticket.product and contract.product == ticket.product:
                return contract, None
        return active[0], None
    expired = [c for c in rows if c.ends_on is not None and c.ends_on < today]
    if expired:
        latest = max(expired, key=lambda c: c.ends_on or date.min)
        return None, f"contract #{latest.id} ({latest.tier}) expired on {latest.ends_on}: default policy applies"
    return None, None


def match_policy(ctx: HookContext, ticket: Ticket, tier: str | None) -> SlaPolicy | None:
    """The first active policy whose conditions all hold for *ticket*."""
    facts: dict[str, Any] = {"priority": ticket.priority, "channel": ticket.channel, "category": ticket.category,
                             "tier": tier, "organization": ticket.organization_id}  # fmt: skip
    key = "ticketing:policies"
    if key not in ctx.cache:
        ctx.cache[key] = list(
            ctx.session.scalars(select(SlaPolicy).where(SlaPolicy.active).order_by(SlaPolicy.position))
        )
    policies: list[SlaPolicy] = ctx.cache[key]
    for policy in policies:
        if all(facts.get(k) in values for k, values in (policy.conditions or {}).items()):
            return policy
    return None


class ContractService(Service):
    """Service contracts: ``ticketing(crm).contracts``."""

    def add(
        self,
        *,
        tier: str,
        starts_on: date | str,
        contact: ContactRef | None = None,
        organization: int | None = None,
        ends_on: date | str | None = None,
        product: str | None = None,
        calendar: int | str | None = None,
        reference: str | None = None,
        actor: Any = None,
    ) -> Contract:
        """Record a customer's (or an organization's) contract; its tier picks their SLA policy."""
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        for field, check in (
            ("tier", lambda: clean_text(tier, "tier", 40, required=True)),
            ("starts_on", lambda: parse_date(starts_on, "starts_on")),
            ("ends_on", lambda: parse_date(ends_on, "ends_on")),
            ("product", lambda: clean_text(product, "product", 120)),
            ("reference", lambda: clean_text(reference, "reference", 60)),
        ):
            try:
                values[field] = check()
            except ValidationError as exc:
                errors.update(exc.errors)
        if values.get("tier"):
            values["tier"] = values["tier"].lower()
        if not values.get("starts_on") and "starts_on" not in errors:
            errors["starts_on"] = "is required"
        if values.get("starts_on") and values.get("ends_on") and values["ends_on"] < values["starts_on"]:
            errors["ends_on"] = f"ends before it starts ({values['starts_on']})"
        if (contact is None) == (organization is None):
            errors["customer"] = "give the customer (a contact) or the organization, one of them"
        with self.crm.transaction(actor) as ctx:
            contact_id = None
            if contact is not None:
                try:
                    contact_id = get_contact(ctx, contact).id
                except NotFound as exc:
                    errors["customer"] = str(exc)
            if organization is not None:
                from crmcore.models import Organization

                if ctx.session.get(Organization, organization) is None:
                    errors["organization"] = f"no organization {organization}"
            calendar_id = None
            if calendar not in (None, ""):
                try:
                    calendar_id = get_calendar(ctx, calendar, "calendar").id
                except ValidationError as exc:
                    errors.update(exc.errors)
            if errors:
                raise ValidationError(errors)
            row = Contract(contact_id=contact_id, organization_id=organization, calendar_id=calendar_id,
                           created_at=ctx.now, **values)  # fmt: skip
            ctx.session.add(row)
            ctx.session.flush()
            ctx.audit("ticketing.contract.add", "ticketing_contract", row.id, {"tier": row.tier})
            return row

    def list(
        self, *, customer: ContactRef | None = None, active_on: date | str | None = None
    ) -> builtins.list[Contract]:
        """Contracts, newest first; of one customer, or in force on a day."""
        with self.crm.transaction() as ctx:
            query = select(Contract).order_by(Contract.starts_on.desc(), Contract.id.desc())
            if customer is not None:
                query = query.where(Contract.contact_id == get_contact(ctx, customer).id)
            day = parse_date(active_on, "active_on")
            if day is not None:
                query = query.where(Contract.starts_on <= day, or_(Contract.ends_on.is_(None), Contract.ends_on >= day))
            return list(ctx.session.scalars(query))

    def count(self) -> int:
        """How many contracts exist."""
        with self.crm.transaction() as ctx:
            return int(ctx.scalar(select(func.count()).select_from(Contract)) or 0)

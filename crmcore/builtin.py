"""The core's own hook implementations, registered as plugin ``core``.

Each is ``trylast`` so any plugin can override it (datasette's pattern):
owner assignment, duplicate matching, the basic score rules, the core's
migrations and templates.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, String, bindparam, cast, func, literal_column, null, or_, select, union_all

from crmcore.context import HookContext
from crmcore.hooks import hookimpl
from crmcore.models import Contact, LifecycleChange, Stage, User
from crmcore.privacy import crm_form_consent_given  # noqa: F401  (the core's double opt-in)
from crmcore.registry import JobCall, JobHandler, PeriodicJob, PermissionSpec
from crmcore.services.base import change_stage
from crmcore.services.timeline import older

if TYPE_CHECKING:
    from decimal import Decimal
    from types import ModuleType

    from starlette.routing import BaseRoute

    from crmcore.bundles import BundleKind
    from crmcore.crm import CRM
    from crmcore.events import ScoreContribution
    from crmcore.models import Affiliate, Touchpoint
    from crmcore.reports import Report, ReportQuery
    from crmcore.services.timeline import TimelineCursor

DORMANCY_HANDLER = "core.dormancy_check"
PACKAGE_DIR = Path(__file__).resolve().parent

#: Behaviour rules: points per touchpoint of a kind, and the cap per kind.
BEHAVIOUR_POINTS: dict[str, tuple[int, int, str]] = {
    "form": (15, 45, "filled in a form"),
    "conversion": (25, 50, "converted"),
    "email_click": (5, 25, "clicked an email link"),
    "email_open": (1, 10, "opened an email"),
    "visit": (3, 15, "visited"),
    "ad_click": (3, 15, "clicked an ad"),
    "affiliate_click": (3, 15, "came from an affiliate"),
    "link_click": (3, 15, "clicked a tracked link"),
    "call": (10, 30, "talked on the phone"),
    "meeting": (15, 30, "met a rep"),
}
#: Behaviour points halve for every this many days since the touchpoint.
HALF_LIFE_DAYS = 30
#: How many recent touchpoints the behaviour rules look at.
SCORE_WINDOW = 200


@hookimpl(trylast=True)
def crm_owner_assign(contact: Contact, ctx: HookContext) -> int | None:
    """Give the lead to the active rep with the fewest open leads and prospects.

    The loads are counted once per unit of work and kept up to date in memory,
    so a batch of captures costs one query, not one per lead.
    """
    return least_loaded_rep(ctx)


def active_reps(ctx: HookContext) -> tuple[int, ...]:
    """Ids of the active users with the role ``rep`` (cached: see :mod:`crmcore.metadata`)."""

    def load() -> tuple[int, ...]:
        query = select(User.id).where(User.active.is_(True), User.role == "rep").order_by(User.id)
        return tuple(ctx.session.scalars(query))

    return ctx.metadata("active_reps", load)


def least_loaded_rep(ctx: HookContext) -> int | None:
    """The core's owner rule on its own (imports use it without building contacts)."""
    loads: dict[int, int] | None = ctx.cache.get("rep_loads")
    if loads is None:
        reps = active_reps(ctx)
        loads = ctx.cache["rep_loads"] = dict.fromkeys(reps, 0)
        if reps:  # no reps (a CRM without sales users): nothing to count
            open_counts = (
                select(Contact.owner_id, func.count())
                .where(Contact.owner_id.in_(reps), Contact.stage.in_([Stage.LEAD, Stage.PROSPECT]))
                .group_by(Contact.owner_id)
            )
            for user_id, count in ctx.session.execute(open_counts):
                if user_id is not None:  # never, by the IN list; for the type checker
                    loads[user_id] = int(count)
    if not loads:
        return None
    rep = min(loads, key=lambda user_id: (loads[user_id], user_id))
    loads[rep] += 1
    return rep


def _duplicate_query(by_email: bool, by_phone: bool) -> Select[tuple[int, str | None]]:
    table = Contact.__table__.c
    keys = []
    if by_email:
        keys.append(table.email_normalized == bindparam("email"))
    if by_phone:
        keys.append(table.phone_normalized == bindparam("phone"))
    where = (or_(*keys), table.erased_at.is_(None), table.merged_into_id.is_(None))
    return select(table.id, table.email_normalized).where(*where).limit(5)


#: Built once, and Core rather than ORM: every capture runs one, most find nobody, and on
#: SQLite building and loading an ORM query costs several times what running it does.
_DUPLICATE_QUERIES = {(e, p): _duplicate_query(e, p) for e, p in ((True, False), (False, True), (True, True))}


@hookimpl(trylast=True)
def crm_duplicate_find(contact: Contact, ctx: HookContext) -> Contact | None:
    """Match on the normalized email, then on the normalized phone number."""
    email, phone = contact.email_normalized, contact.phone_normalized
    if not email and not phone:
        return None
    if ctx.session.autoflush:  # a Core query does not autoflush: pending changes must be seen
        ctx.session.flush()
    statement = _DUPLICATE_QUERIES[(bool(email), bool(phone))]
    candidates = ctx.session.connection().execute(statement, {"email": email, "phone": phone}).all()
    if not candidates:
        return None
    chosen = next((c for c in candidates if email and c.email_normalized == email), candidates[0])
    return ctx.session.get(Contact, chosen.id)


@hookimpl(trylast=True)
def crm_lead_score_contributions(contact: Contact, ctx: HookContext) -> list[ScoreContribution]:
    """Fit rules on the contact's fields and decaying behaviour rules on its touchpoints."""
    from crmcore.events import ScoreContribution

    points: list[ScoreContribution] = []
    if contact.phone_normalized:
        points.append(ScoreContribution(points=5, reason="has a phone number"))
    if contact.organization_id:
        points.append(ScoreContribution(points=10, reason="works at a known organization"))
    if contact.title:
        points.append(ScoreContribution(points=5, reason="gave a job title"))
    if contact.id is None:
        return points
    rows = ctx.cache.get("fresh_touches", {}).get(contact.id)
    if rows is None:  # not created in this unit of work: read its recent touchpoints
        from crmcore.models import Touchpoint

        rows = ctx.session.execute(
            select(Touchpoint.kind, Touchpoint.occurred_at)
            .where(Touchpoint.contact_id == contact.id)
            .order_by(Touchpoint.occurred_at.desc())
            .limit(SCORE_WINDOW)
        ).all()
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    for kind, occurred_at in rows:
        rule = BEHAVIOUR_POINTS.get(kind)
        if rule is None:
            continue
        age_days = max((ctx.now - occurred_at).total_seconds() / 86400, 0.0)
        totals[kind] = totals.get(kind, 0.0) + rule[0] * 0.5 ** (age_days / HALF_LIFE_DAYS)
        counts[kind] = counts.get(kind, 0) + 1
    for kind, total in totals.items():
        per, cap, text = BEHAVIOUR_POINTS[kind]
        value = round(min(total, cap))
        if value:
            times = f" ({counts[kind]}x, decayed)" if value < min(per * counts[kind], cap) else f" ({counts[kind]}x)"
            points.append(ScoreContribution(points=value, reason=text + times))
    return points


@hookimpl(trylast=True)
def crm_register_jobs() -> list[JobHandler | PeriodicJob]:
    """The core's jobs: activity reminders, the daily dormancy check, queued mail."""
    from crmcore.attribution import POSTBACK_HANDLER, send_postback
    from crmcore.mail import SEND_MAIL_HANDLER, send_mail_job
    from crmcore.services.sales import REMINDER_HANDLER

    return [
        JobHandler(name=REMINDER_HANDLER, func=_activity_reminder, batch=True, help="Fire an activity's reminder."),
        JobHandler(name=DORMANCY_HANDLER, func=_dormancy_check, help="Move inactive customers to dormant."),
        PeriodicJob(name="dormancy-check", handler=DORMANCY_HANDLER, every=timedelta(days=1)),
        JobHandler(
            name=POSTBACK_HANDLER,
            func=send_postback,
            max_attempts=8,
            backoff=timedelta(minutes=1),
            help="Send an affiliate's conversion postback (once per conversion).",
        ),
        JobHandler(
            name=SEND_MAIL_HANDLER,
            func=send_mail_job,
            max_attempts=10,
            backoff=timedelta(seconds=30),
            help="Send a queued email (once per idempotency key).",
        ),
    ]


def _activity_reminder(call: JobCall) -> None:
    from crmcore.events import ActivityReminder
    from crmcore.models import Activity

    with call.crm.transaction() as ctx:
        activity = ctx.session.get(Activity, call.payload["activity_id"])
        if activity is None or activity.done_at is not None:
            return
        ctx.call(
            "crm_activity_reminder_due",
            event=ActivityReminder(
                activity_id=activity.id, owner_id=activity.owner_id, contact_id=activity.contact_id,
                subject=activity.subject, due_at=activity.due_at, occurred_at=ctx.now,
            ),
        )  # fmt: skip


def _dormancy_check(call: JobCall) -> None:
    """Every customer without purchase or touchpoint for the period becomes dormant."""
    from crmcore.events import CustomerBecameDormant

    crm = call.crm
    while True:
        with crm.transaction() as ctx:
            cutoff = ctx.now - timedelta(days=crm.settings.dormant_after_days)
            batch = ctx.session.scalars(
                select(Contact)
                .where(Contact.stage == Stage.CUSTOMER, Contact.last_activity_at < cutoff)
                .order_by(Contact.last_activity_at)
                .limit(500)
            ).all()
            for contact in batch:
                event = change_stage(
                    ctx, contact, Stage.DORMANT, f"no activity for {crm.settings.dormant_after_days} days"
                )
                ctx.call(
                    "crm_customer_became_dormant",
                    event=CustomerBecameDormant(
                        contact_id=contact.id, last_activity_at=contact.last_activity_at, occurred_at=ctx.now
                    ),
                )
                ctx.call("crm_lifecycle_stage_changed", event=event)
        if len(batch) < 500:
            return


@hookimpl(trylast=True)
def crm_register_bundle_kinds() -> list[BundleKind]:
    from crmcore.bundles import CORE_KINDS

    return list(CORE_KINDS)


@hookimpl(trylast=True)
def crm_register_models() -> list[ModuleType]:
    """Every table of the core (each command otherwise maps only the tables it uses)."""
    from crmcore import models

    return models.load_all()


@hookimpl(trylast=True)
def crm_register_migrations() -> list[Path]:
    """The core's Alembic revisions."""
    return [PACKAGE_DIR / "migrations" / "versions"]


@hookimpl(trylast=True)
def crm_register_permissions() -> list[PermissionSpec]:
    """The core's permissions (contacts, opportunities, reports, users, the console)."""
    from crmcore.permissions import CORE_PERMISSIONS

    return list(CORE_PERMISSIONS)


@hookimpl(trylast=True)
def crm_register_routes(crm: CRM) -> list[BaseRoute]:
    """The core's pages: tracked links, web forms, conversions (``crmcore.web.capture``), double opt-in."""
    from crmcore.privacy import consent_routes
    from crmcore.web.capture import routes

    return [*routes(crm), *consent_routes(crm)]


@hookimpl(trylast=True)
def crm_affiliate_commission(affiliate: Affiliate, conversion: Touchpoint, ctx: HookContext) -> Decimal | None:
    """The affiliate's own rule: percent of the conversion value plus a flat amount."""
    from crmcore.attribution import default_commission

    return default_commission(affiliate, conversion)


@hookimpl(trylast=True)
def crm_register_templates() -> list[Path]:
    """The shared templates (``templates/`` in the source tree)."""
    return [PACKAGE_DIR / "templates"]


@hookimpl(trylast=True)
def crm_segment_query(name: str, ctx: HookContext) -> Select[int] | None:
    """Saved segments (``crm segment create``) compiled to SQL."""
    from crmcore.services.segments import saved_segment_query

    return saved_segment_query(name, ctx)


@hookimpl(trylast=True)
def crm_segment_names(ctx: HookContext) -> list[str]:
    """The names of the saved segments."""
    from crmcore.models import Segment

    return list(ctx.session.scalars(select(Segment.name).order_by(Segment.name)))


@hookimpl(trylast=True)
def crm_register_reports() -> list[Report]:
    """The core's marketing and sales reports."""
    from crmcore.reports.marketing import MARKETING_REPORTS
    from crmcore.reports.sales import SALES_REPORTS

    return [*MARKETING_REPORTS, *SALES_REPORTS]


@hookimpl(trylast=True)
def crm_campaign_cost_contributions(query: ReportQuery, ctx: HookContext) -> list[Select[Any]]:
    """Imported ad spend (``ad_spend``) is the core's campaign cost."""
    from crmcore.reports.marketing import ad_spend_costs

    return [ad_spend_costs()]


@hookimpl(trylast=True)
def crm_revenue_query(query: ReportQuery, ctx: HookContext) -> Select[Any] | None:
    """Recorded purchases are the revenue attribution credits, unless a plugin chooses otherwise."""
    from crmcore.reports.marketing import purchase_revenue

    return purchase_revenue()  # type: ignore[no-any-return]


def _timeline_part(key: str, model: Any, at: Any, kind: Any, texts: tuple[Any, ...], amount: Any,
                   cursor: TimelineCursor | None, limit: int) -> Any:
    """One kind of row of the core's timeline: a page of it, in the union's common columns."""
    from crmcore.models import Purchase

    nothing = cast(null(), String(255))
    columns = [
        literal_column(f"'{key}'", String(20)).label("key"), model.id.label("id"), at.label("at"),
        kind.label("kind"), *((text if text is not None else nothing).label(f"t{n}") for n, text in enumerate(texts)),
        (amount if amount is not None else cast(null(), Purchase.total.type)).label("amount"),
    ]  # fmt: skip
    query = select(*columns).where(model.contact_id == bindparam("contact_id"))
    condition = older(cursor, key, at, model.id)
    if condition is not None:
        query = query.where(condition)
    return select(query.order_by(at.desc(), model.id.desc()).limit(limit).subquery())


@functools.lru_cache(maxsize=64)
def _timeline_union(cursor: TimelineCursor | None, limit: int) -> Any:
    """The core's timeline page as one UNION ALL (built once per cursor and size; the contact is a parameter)."""
    from crmcore.models import Feedback, Interaction, Purchase, Touchpoint

    def word(text: str) -> Any:
        return literal_column(f"'{text}'", String(20))

    def part(key: str, model: Any, at: Any, kind: Any, texts: tuple[Any, ...], amount: Any = None) -> Any:
        return _timeline_part(key, model, at, kind, texts, amount, cursor, limit)

    return union_all(
        part("stage", LifecycleChange, LifecycleChange.occurred_at, word("stage"),
             (LifecycleChange.from_stage, LifecycleChange.to_stage, LifecycleChange.reason, None)),
        part("touchpoint", Touchpoint, Touchpoint.occurred_at, Touchpoint.kind,
             (Touchpoint.source, Touchpoint.campaign, Touchpoint.ad, Touchpoint.affiliate)),
        part("interaction", Interaction, Interaction.occurred_at, Interaction.kind,
             (Interaction.subject, None, None, None)),
        part("purchase", Purchase, Purchase.purchased_at, word("purchase"), (Purchase.currency, None, None, None),
             Purchase.total),
        part("feedback", Feedback, Feedback.created_at, word("feedback"), (Feedback.source, None, None, None),
             Feedback.rating),
    )  # fmt: skip


@hookimpl(trylast=True)
def crm_contact_timeline(
    contact: Contact, cursor: TimelineCursor | None, limit: int, ctx: HookContext
) -> list[dict[str, Any]]:
    """The core's timeline items: stage moves, touchpoints, interactions, purchases, feedback (one query)."""
    union = _timeline_union(cursor, limit)
    items = []
    for row in ctx.session.execute(union, {"contact_id": contact.id}):
        item = {"at": row.at, "key": row.key, "id": row.id}
        if row.key == "stage":
            moved = f"{row.t0} -> {row.t1}" if row.t0 else f"became {row.t1}"
            item.update(kind="stage", text=f"{moved} ({row.t2})")
        elif row.key == "touchpoint":
            named = zip(("source", "campaign", "ad", "affiliate"), (row.t0, row.t1, row.t2, row.t3), strict=True)
            what = ", ".join(f"{name}={value}" for name, value in named if value)
            item.update(kind=f"touch:{row.kind}", text=what or row.kind, touchpoint_id=row.id)
        elif row.key == "interaction":
            item.update(kind=f"interaction:{row.kind}", text=row.t0 or row.kind, interaction_id=row.id)
        elif row.key == "purchase":
            item.update(kind="purchase", text=f"bought for {row.amount:.2f} {row.t0}", purchase_id=row.id)
        else:
            rating = f"rated {int(row.amount)}" if row.amount is not None else "commented"
            item.update(kind="feedback", text=f"{rating} via {row.t0}", feedback_id=row.id)
        items.append(item)
    return items

"""The core's own hook implementations, registered as plugin ``core``.

Each is ``trylast`` so any plugin can override it (datasette's pattern):
owner assignment, duplicate matching, the basic score rules, the core's
migrations and templates.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, String, bindparam, cast, func, literal_column, null, or_, select, union_all

from crmcore.context import HookContext
from crmcore.hooks import hookimpl
from crmcore.i18n import N_, NO_ACTIVITY
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
REPORT_ROLLUP_HANDLER = "core.report_rollup"
PACKAGE_DIR = Path(__file__).resolve().parent

#: Behaviour rules: points per touchpoint of a kind, and the cap per kind.
BEHAVIOUR_POINTS: dict[str, tuple[int, int, str]] = {
    "form": (15, 45, N_("filled in a form")),
    "conversion": (25, 50, N_("converted")),
    "email_click": (5, 25, N_("clicked an email link")),
    "email_open": (1, 10, N_("opened an email")),
    "visit": (3, 15, N_("visited")),
    "ad_click": (3, 15, N_("clicked an ad")),
    "affiliate_click": (3, 15, N_("came from an affiliate")),
    "link_click": (3, 15, N_("clicked a tracked link")),
    "call": (10, 30, N_("talked on the phone")),
    "meeting": (15, 30, N_("met a rep")),
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


def _fit(points: int, reason: str) -> ScoreContribution:
    """A fit rule's points, with its translatable reason."""
    from crmcore.events import ScoreContribution

    return ScoreContribution(points=points, reason=reason, message=reason)


#: The default pipeline's stage names (migration ``core_0001``), translated where the console shows them.
DEFAULT_STAGE_NAMES = (N_("Qualification"), N_("Needs analysis"), N_("Proposal"), N_("Negotiation"), N_("Won"),
                       N_("Lost"))  # fmt: skip


@functools.cache
def _recent_touches() -> Select[str, datetime]:
    """A contact's last :data:`SCORE_WINDOW` touchpoints' kinds and times (built once; the contact is a parameter)."""
    from crmcore.models import Touchpoint

    return (select(Touchpoint.kind, Touchpoint.occurred_at).where(Touchpoint.contact_id == bindparam("contact_id"))
            .order_by(Touchpoint.occurred_at.desc()).limit(SCORE_WINDOW))  # fmt: skip


@hookimpl(trylast=True)
def crm_lead_score_contributions(contact: Contact, ctx: HookContext) -> list[ScoreContribution]:
    """Fit rules on the contact's fields and decaying behaviour rules on its touchpoints."""
    if contact.id is None:
        return core_score_contributions(contact, (), ctx.now)
    rows = ctx.cache.get("fresh_touches", {}).get(contact.id)
    if rows is None:  # not created in this unit of work: read its recent touchpoints
        rows = ctx.session.execute(_recent_touches(), {"contact_id": contact.id}).all()
    return core_score_contributions(contact, rows, ctx.now)


def core_score_contributions(
    contact: Contact, touches: Iterable[tuple[str, datetime]], now: datetime
) -> list[ScoreContribution]:
    """The core's rules on *contact*'s fields and its *touches* (kind and time of each), as of *now*.

    Reads nothing from the database: :func:`crm_lead_score_contributions` gives it
    the touchpoints, and a capture the touch it is about to record
    (:func:`crmcore.services.base.new_lead_score`).
    """
    from crmcore.events import ScoreContribution

    points: list[ScoreContribution] = []
    if contact.phone_normalized:
        points.append(_fit(5, N_("has a phone number")))
    if contact.organization_id:
        points.append(_fit(10, N_("works at a known organization")))
    if contact.title:
        points.append(_fit(5, N_("gave a job title")))
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    for kind, occurred_at in touches:
        rule = BEHAVIOUR_POINTS.get(kind)
        if rule is None:
            continue
        age_days = max((now - occurred_at).total_seconds() / 86400, 0.0)
        totals[kind] = totals.get(kind, 0.0) + rule[0] * 0.5 ** (age_days / HALF_LIFE_DAYS)
        counts[kind] = counts.get(kind, 0) + 1
    for kind, total in totals.items():
        per, cap, text = BEHAVIOUR_POINTS[kind]
        value = round(min(total, cap))
        if value:
            decayed = value < min(per * counts[kind], cap)
            message = N_("%(what)s (%(count)sx, decayed)") if decayed else N_("%(what)s (%(count)sx)")
            points.append(ScoreContribution(points=value, reason=message % {"what": text, "count": counts[kind]},
                                            message=message, values={"count": counts[kind]}, terms={"what": text}))
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
            name=REPORT_ROLLUP_HANDLER,
            func=_report_rollup,
            help="Roll up the reports' newly settled days and recompute the days late writes changed.",
        ),
        PeriodicJob(name="report-rollup", handler=REPORT_ROLLUP_HANDLER, every=timedelta(hours=1)),
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


def _report_rollup(call: JobCall) -> None:
    """Keep the reports' daily rollups current (reports also do it when they find work left)."""
    from crmcore.reports.rollup import refresh

    refresh(call.crm)


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
                    ctx, contact, Stage.DORMANT, NO_ACTIVITY % {"days": crm.settings.dormant_after_days}
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


#: The core's name where the console shows where a score's points come from (plugins mark theirs).
CORE_NAME = N_("core")

#: The labels of the core's timeline kinds, for the console's catalogs (an item's ``kind`` is its msgid).
TIMELINE_KINDS = (
    N_("stage"), N_("purchase"), N_("feedback"),
    N_("touch:form"), N_("touch:ad_click"), N_("touch:affiliate_click"), N_("touch:link_click"),
    N_("touch:email_open"), N_("touch:email_click"), N_("touch:visit"), N_("touch:call"), N_("touch:meeting"),
    N_("touch:conversion"), N_("touch:impression"),
    N_("interaction:call"), N_("interaction:meeting"), N_("interaction:email"), N_("interaction:note"),
    N_("interaction:visit"), N_("interaction:chat"),
)  # fmt: skip
#: Reasons the core itself gives for a stage move (others are what a user typed, shown as typed).
STAGE_REASONS = (N_("captured"), N_("created"), N_("won opportunity"), N_("first purchase"))
#: One part of a touchpoint's description per attribute it has.
_TOUCH_PARTS = (("source", N_("source=%(source)s")), ("campaign", N_("campaign=%(campaign)s")),
                ("ad", N_("ad=%(ad)s")), ("affiliate", N_("affiliate=%(affiliate)s")))  # fmt: skip


def _described(item: dict[str, Any], message: str | list[str], values: dict[str, Any] | None = None,
               terms: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """*item* with its translatable description, and its English ``text`` made from the same message."""
    item.update(message=message, values=values or {}, terms=terms or {})
    words = {**(values or {}), **(terms or {})}
    item["text"] = ", ".join(part % words for part in ([message] if isinstance(message, str) else message))
    return item


@hookimpl(trylast=True)
def crm_contact_timeline(
    contact: Contact, cursor: TimelineCursor | None, limit: int, ctx: HookContext
) -> list[dict[str, Any]]:
    """The core's timeline items: stage moves, touchpoints, interactions, purchases, feedback (one query)."""
    union = _timeline_union(cursor, limit)
    items = []
    for row in ctx.session.execute(union, {"contact_id": contact.id}):
        item: dict[str, Any] = {"at": row.at, "key": row.key, "id": row.id}
        if row.key == "stage":
            item["kind"] = "stage"
            terms = {"from": row.t0, "to": row.t1, "reason": row.t2}
            if row.t0:
                message = N_("%(from)s -> %(to)s (%(reason)s)") if row.t2 else N_("%(from)s -> %(to)s")
            else:
                message = N_("became %(to)s (%(reason)s)") if row.t2 else N_("became %(to)s")
            _described(item, message, terms=terms)
        elif row.key == "touchpoint":
            values = dict(zip(("source", "campaign", "ad", "affiliate"), (row.t0, row.t1, row.t2, row.t3), strict=True))
            item.update(kind=f"touch:{row.kind}", touchpoint_id=row.id)
            _described(item, [part for name, part in _TOUCH_PARTS if values[name]], values)
            item["text"] = item["text"] or row.kind  # the console shows the kind alone
        elif row.key == "interaction":  # the subject is what the rep typed: shown as typed
            item.update(kind=f"interaction:{row.kind}", text=row.t0 or row.kind, interaction_id=row.id)
            if not row.t0:
                item.update(message=[], values={}, terms={})
        elif row.key == "purchase":
            item.update(kind="purchase", purchase_id=row.id)
            _described(item, N_("bought for %(amount)s"), {"amount": {"amount": row.amount, "currency": row.t0}})
            item["text"] = f"bought for {row.amount:.2f} {row.t0}"
        else:
            item.update(kind="feedback", feedback_id=row.id)
            if row.amount is not None:
                _described(item, N_("rated %(rating)s via %(channel)s"), {"rating": int(row.amount)},
                           {"channel": row.t0})  # fmt: skip
            else:
                _described(item, N_("commented via %(channel)s"), terms={"channel": row.t0})
        items.append(item)
    return items

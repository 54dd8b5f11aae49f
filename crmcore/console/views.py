"""The core's console pages: sign-in, my day, search, the contact page, the pipeline board, reports."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import bindparam, func, or_, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from crmcore import permissions
from crmcore.console import auth
from crmcore.console.app import base_path, crm_of, error_page, formatter, page, panel_context, staff, translator
from crmcore.console.menu import Panel, SearchHit
from crmcore.errors import ValidationError
from crmcore.i18n import N_
from crmcore.services.timeline import TimelineCursor
from crmcore.web.limits import RateLimiter

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM
    from crmcore.events import ScoreContribution
    from crmcore.models import Contact

#: Timeline items per page on the contact page.
TIMELINE_PAGE = 20
#: Purposes and channels shown in the consent box (when the consent ledger is installed).
CONSENT_PURPOSES = ("marketing", "surveys", "tracking")
CONSENT_CHANNELS = ("email", "sms", "phone")
#: Qualifying and converting by hand need a reason.
REASON_REQUIRED = N_("a reason is required")


def _field(form: FormData | None, name: str, *, required: str | None = None) -> str:
    """The form's *name* field, stripped; empty refused with the *required* message (marked with ``N_``)."""
    value = form.get(name) if form is not None else None
    text = value.strip() if isinstance(value, str) else ""
    if required and not text:
        raise ValidationError({name: required})
    return text


def _back(request: Request, path: str) -> Response:
    return RedirectResponse(f"{base_path(request)}/{path.lstrip('/')}", status_code=303)


# -- sign-in -------------------------------------------------------------------------


def _limiters(crm: CRM) -> tuple[RateLimiter, RateLimiter]:
    found: tuple[RateLimiter, RateLimiter] | None = getattr(crm, "_console_login_limiters", None)
    if found is None:
        limit, window = crm.settings.console_login_attempts, crm.settings.console_login_window
        found = (RateLimiter(limit * 4, window), RateLimiter(limit, window))
        crm._console_login_limiters = found  # type: ignore[attr-defined]
    return found


async def login(request: Request) -> Response:
    """The sign-in page (GET) and the sign-in itself (POST)."""
    crm = crm_of(request)
    token, new_cookie = auth.login_csrf(crm, request)
    target = auth.safe_next(request, request.query_params.get("next"))
    error: str | None = None
    status = 200
    email = ""
    if request.method == "POST":
        form = await request.form()
        email = str(form.get("email") or "").strip().lower()[:320]
        target = auth.safe_next(request, str(form.get("next") or ""))
        by_address, by_email = _limiters(crm)
        if new_cookie is not None or not auth.tokens_match(token, form.get("csrf")):
            error, status = "The form expired. Please try again.", 403
        elif not by_address.allow(auth.client_address(request)) or not by_email.allow(email):
            error, status = "Too many sign-in attempts. Wait a few minutes and try again.", 429
        else:
            user = await run_in_threadpool(crm.users.authenticate, email, str(form.get("password") or ""))
            session = auth.issue_session(crm, user) if user is not None else None
            if user is None or session is None or auth.session_user(crm, session[1]) is None:
                error, status = "Wrong email or password, or no access to the console.", 401
            else:
                done = RedirectResponse(target, status_code=303)
                auth.set_cookie(crm, request, done, auth.SESSION_COOKIE, session[0],
                                crm.settings.console_session_hours * 3600)  # fmt: skip
                auth.clear_cookie(crm, request, done, auth.LOGIN_CSRF_COOKIE)
                return done
    response = page(request, "console/login.html", {"login_csrf": token, "next": target, "error": error,
                                                    "email": email}, status)  # fmt: skip
    if new_cookie is not None:
        auth.set_cookie(crm, request, response, auth.LOGIN_CSRF_COOKIE, new_cookie, 3600)
    response.headers["cache-control"] = "no-store"
    return response


@staff(permission=None)
def logout(request: Request, form: FormData | None) -> Response:
    """Sign out: this and every other session of the user end (the session epoch moves on)."""
    crm = crm_of(request)
    crm.users.end_sessions(request.state.user.id)
    response = RedirectResponse(f"{base_path(request)}/login", status_code=303)
    auth.clear_cookie(crm, request, response, auth.SESSION_COOKIE)
    return response


async def set_language(request: Request) -> Response:
    """Switch the console's language (a cookie), then go back."""
    crm = crm_of(request)
    from crmcore.console.i18n import available_languages

    code = request.path_params["code"]
    target = auth.safe_next(request, request.query_params.get("next"))
    response = RedirectResponse(target, status_code=303)
    if code in available_languages(crm):
        auth.set_cookie(crm, request, response, auth.LANGUAGE_COOKIE, code, 365 * 86400)
    return response


# -- my day ---------------------------------------------------------------------------


@staff()
def my_day(request: Request, form: FormData | None) -> Response:
    """Activities and follow-ups due today or overdue, new leads, and plugins' panels (SLA at risk)."""
    crm = crm_of(request)
    user = request.state.user
    now = crm.clock.now()
    local = now.astimezone(crm.settings.zone)
    end_of_day = (local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)).astimezone(now.tzinfo)
    activities = crm.sales.list_activities(owner=user.id, due_before=end_of_day, limit=50)
    leads = crm.contacts.list(owner=user.id, stage="lead", limit=10) if can(request, "contacts.view") else []
    names = crm.contacts.names(a.contact_id for a in activities if a.contact_id)
    with crm.transaction(readonly=True) as ctx:
        panel_context(request, ctx)
        panels = _panels(crm.plugins.call("crm_console_my_day", user=user, ctx=ctx))
    return page(request, "console/my_day.html", {
        "activities": [a for a in activities if a.kind != "follow_up"],
        "follow_ups": [a for a in activities if a.kind == "follow_up"],
        "names": names, "leads": leads, "panels": panels, "now": now,
    })  # fmt: skip


@staff("console.access")
def activity_done(request: Request, form: FormData | None) -> Response:
    """Mark an activity done."""
    crm_of(request).sales.complete_activity(request.path_params["activity_id"])
    return _back(request, "")


def can(request: Request, permission: str) -> bool:
    """Whether the signed-in user holds *permission*."""
    grants = getattr(request.state, "grants", None)
    return grants is not None and bool(grants.allows(permission))


# -- search ---------------------------------------------------------------------------


@staff("contacts.view")
def search(request: Request, form: FormData | None) -> Response:
    """One box across contacts, organizations, opportunities and what plugins add (tickets)."""

    text = request.query_params.get("q", "").strip()[:200]
    groups = search_hits(crm_of(request), text, gettext=translator(request), money=formatter(request).money)
    template = "console/_results.html" if "hx-request" in request.headers else "console/search.html"
    return page(request, template, {"text": text, "groups": groups})


def search_hits(crm: CRM, text: str, *, gettext: Callable[[str], str] = str,
                money: Callable[[Any, str], str] | None = None) -> dict[str, list[SearchHit]]:  # fmt: skip
    """What the search page shows for *text*, by group: the core's hits (one query), then the plugins'.

    The acting user's reach and permissions apply (:meth:`CRM.acting_as`);
    *text* under two characters finds nothing. *gettext* and *money* write the
    details in the page's language (English and plain amounts by default).
    """
    groups: dict[str, list[SearchHit]] = {}
    if len(text) < 2:
        return groups
    with crm.transaction(readonly=True) as ctx:
        groups = core_search(ctx, text, gettext=gettext, money=money or _plain_money)
        for group in crm.plugins.call("crm_console_search", text=text, ctx=ctx):
            for hit in group:
                groups.setdefault(hit.kind, []).append(hit)
    return groups


def _plain_money(amount: Any, currency: str) -> str:
    return f"{amount:.2f} {currency}"


def core_search(ctx: HookContext, text: str, *, gettext: Callable[[str], str],
                money: Callable[[Any, str], str]) -> dict[str, list[SearchHit]]:  # fmt: skip
    """Contacts, organizations and opportunities matching *text*, within the user's reach (one query)."""
    _ = gettext
    opportunities = permissions.has(ctx, "opportunities.view")
    statement, values = _search_query(ctx, text, opportunities=opportunities)
    rows = ctx.session.execute(statement, values).all()
    groups: dict[str, list[SearchHit]] = {}
    seen: set[int] = set()
    for row in sorted(rows, key=_search_order):
        if row.kind == "contact" and row.id not in seen:
            seen.add(row.id)
            name = " ".join(p for p in (row.a, row.b) if p) or row.c or f"#{row.id}"
            groups.setdefault("Contacts", []).append(SearchHit(kind="Contacts", title=name, path=f"contacts/{row.id}",
                                                               detail=f"{row.c or ''} · {_(row.d)}"))  # fmt: skip
        elif row.kind == "organization" and row.ref is not None:  # linked to its first contact the user reaches
            groups.setdefault("Organizations", []).append(SearchHit(
                kind="Organizations", title=row.a, path=f"contacts/{row.ref}", detail=row.b or ""))  # fmt: skip
        elif row.kind == "opportunity":
            groups.setdefault("Opportunities", []).append(SearchHit(
                kind="Opportunities", title=row.a, path=f"pipeline#opportunity-{row.id}",
                detail=f"{money(row.amount, row.b)} · {_(row.c)}"))  # fmt: skip
    return groups


def _search_order(row: Any) -> tuple[Any, ...]:
    """The order hits are shown in: by part; contacts and opportunities newest first, organizations by name."""
    if row.kind == "organization":
        return row.part, row.a.casefold(), row.id
    return row.part, -row.id


def _search_query(ctx: Any, text: str, *, opportunities: bool) -> tuple[Any, dict[str, Any]]:
    """The search for *text* as one ``UNION ALL`` statement and its parameters (:func:`_search_statement`)."""
    from crmcore.services.contacts import contact_pattern
    from crmcore.services.sales import opportunity_pattern

    shape, values = permissions.reach(ctx)
    digits = "".join(ch for ch in text if ch.isdigit())
    by_id = text.isdigit() and int(text) < 2**63  # a longer number is no id (and no BIGINT)
    by_phone = len(digits) >= 6
    values.update(contact_pattern=contact_pattern(text), organization_pattern=f"%{text.lower()}%")
    if by_id:
        values["contact_id"] = int(text)
    if by_phone:
        values["phone_pattern"] = f"%{digits}"
    if opportunities:
        values["opportunity_pattern"] = opportunity_pattern(text)
    return _search_statement(shape, by_id=by_id, by_phone=by_phone, opportunities=opportunities), values


@functools.cache
def _search_statement(shape: str | None, *, by_id: bool, by_phone: bool, opportunities: bool) -> Any:
    """The search as one ``UNION ALL``: a page of each kind of match, in the common columns.

    Parts, in the order shown: the contact whose id is the text (*by_id*),
    contacts by name or email, contacts by phone number (*by_phone*: six
    digits or more), organizations by name or domain (each with the first
    contact the user reaches in it), opportunities by name (*opportunities*).
    Every part applies the user's reach (*shape*, :func:`crmcore.permissions.reach`).
    Each part is a plain ``ORDER BY ... LIMIT`` (no window function), so a
    cached generic plan on PostgreSQL still uses the trigram indexes; the hits
    are put in order afterwards (:func:`_search_order`). Built once per
    shape; the patterns, the id and the reach are bound parameters.
    """
    from sqlalchemy import Numeric, String, cast, literal, null, union_all

    from crmcore.models import Contact, Opportunity, Organization
    from crmcore.services.contacts import contact_matches
    from crmcore.services.sales import opportunity_matches

    def nothing(type_: Any = String(255)) -> Any:
        return cast(null(), type_)

    def part(number: int, kind: str, model: Any, columns: tuple[Any, ...], *conditions: Any, order: Any,
             ref: Any = None, amount: Any = None) -> Any:  # fmt: skip
        texts = (*columns, *(nothing() for _ in range(4 - len(columns))))
        query = select(
            literal(number).label("part"), literal(kind, String(20)).label("kind"), model.id.label("id"),
            (ref if ref is not None else nothing(model.id.type)).label("ref"),
            *(column.label(label) for column, label in zip(texts, "abcd", strict=True)),
            (amount if amount is not None else nothing(Numeric(18, 4))).label("amount"),
        ).where(*conditions)  # fmt: skip
        return select(query.order_by(*order).limit(20).subquery())

    def reach(column: Any) -> list[Any]:
        return [permissions.reach_condition(column, shape)] if shape else []

    live = [Contact.erased_at.is_(None), Contact.merged_into_id.is_(None), *reach(Contact.owner_id)]
    person = (Contact.first_name, Contact.last_name, Contact.email, Contact.stage)
    newest = (Contact.id.desc(),)
    parts = [part(2, "contact", Contact, person, contact_matches(bindparam("contact_pattern")), *live, order=newest)]
    if by_id:
        parts.append(part(1, "contact", Contact, person, Contact.id == bindparam("contact_id"), *live[2:],
                          order=newest))  # fmt: skip
    if by_phone:
        parts.append(part(3, "contact", Contact, person, Contact.phone_normalized.like(bindparam("phone_pattern")),
                          *live, order=newest))  # fmt: skip
    first_reached = select(func.min(Contact.id)).where(Contact.organization_id == Organization.id, *live[2:])
    pattern: Any = bindparam("organization_pattern")
    parts.append(part(4, "organization", Organization, (Organization.name, Organization.domain),
                      or_(Organization.name.ilike(pattern), Organization.domain.ilike(pattern)),
                      order=(Organization.name, Organization.id), ref=first_reached.scalar_subquery()))  # fmt: skip
    if opportunities:
        parts.append(part(5, "opportunity", Opportunity, (Opportunity.name, Opportunity.currency, Opportunity.status),
                          opportunity_matches(bindparam("opportunity_pattern")), *reach(Opportunity.owner_id),
                          order=(Opportunity.id.desc(),), amount=Opportunity.amount))  # fmt: skip
    return union_all(*parts)


# -- the contact page -----------------------------------------------------------------


def _timeline(ctx: HookContext, contact: Any, before: TimelineCursor | None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the timeline of *contact* (within reach: checked already) and the cursor of the next (or None)."""
    from crmcore.services.timeline import timeline

    items = timeline(ctx, contact, limit=TIMELINE_PAGE + 1, before=before)
    more = len(items) > TIMELINE_PAGE
    items = items[:TIMELINE_PAGE]
    return items, (TimelineCursor.of(items[-1]).token() if more and items else None)


def _panels(groups: Iterable[list[Panel]]) -> list[Panel]:
    return sorted((p for group in groups for p in group), key=lambda p: p.order)


@attrs.frozen(kw_only=True)
class ContactPageData:
    """What the contact page shows of a contact, read in one unit of work (:func:`contact_page_data`)."""

    contact: Contact
    #: The owner's ``id``, ``name`` and ``team_id`` (a row), if any.
    owner: Any
    #: Purpose by channel, when the consent ledger is installed.
    consent: dict[str, dict[str, bool]] | None
    tags: list[str]
    #: The score's contributions, reasons in English (the page translates them).
    contributions: list[ScoreContribution]
    #: The timeline's first page, and the cursor of the next (None on the last page).
    items: list[dict[str, Any]]
    more: str | None
    #: The opportunities in the user's reach, newest first, as rows with ``stage_name``.
    opportunities: list[Any]
    panels: list[Panel]


def contact_page_data(crm: CRM, contact_id: int, *,
                      prepare: Callable[[HookContext], None] | None = None) -> ContactPageData:  # fmt: skip
    """Everything the contact page shows of *contact_id*, for the acting user (:meth:`CRM.acting_as`).

    Everything is read in one unit of work, in as few round trips as the data
    allows: the contact with its owner and consent in one query, its tags, its
    recent touchpoints (for the score), the core's timeline page, and its
    opportunities with their stages (rows, not objects: the page only reads
    them); then the plugins' panels (``crm_contact_panels``), after *prepare*
    has set up their unit of work (the page's URL prefix and language). The
    statements are built once per process. A contact out of reach is NotFound.
    """
    from crmcore.services.base import get_contact, score_contributions
    from crmcore.services.contacts import contact_tags

    statement, pairs = _contact_query(crm)
    with crm.transaction(readonly=True) as ctx:
        found = ctx.session.execute(statement, {"contact_id": contact_id}).first()
        owner = found[1] if found is not None and found[1].id is not None else None
        if owner is not None:  # the reach check below needs the owner's team: known now
            ctx.cache.setdefault("owner_teams", {})[owner.id] = owner.team_id
        contact = get_contact(ctx, contact_id)  # permission and reach (the row is in the session already)
        consent = _consent_grid(pairs, found[2:]) if found is not None and pairs else None
        tags = contact_tags(ctx.session, contact.id)
        contributions = score_contributions(ctx, contact)
        items, more = _timeline(ctx, contact, None)
        opportunities = _contact_opportunities(ctx, contact.id) if permissions.has(ctx, "opportunities.view") else []
        if prepare is not None:
            prepare(ctx)
        panels = _panels(crm.plugins.call("crm_contact_panels", contact=contact, ctx=ctx))
    return ContactPageData(contact=contact, owner=owner, consent=consent, tags=tags, contributions=contributions,
                           items=items, more=more, opportunities=opportunities, panels=panels)  # fmt: skip


@staff("contacts.view")
def contact_page(request: Request, form: FormData | None) -> Response:
    """A contact: fields, score with reasons, consent, timeline (paged), plugins' panels, actions."""
    data = contact_page_data(crm_of(request), request.path_params["contact_id"],
                             prepare=lambda ctx: panel_context(request, ctx))  # fmt: skip
    return page(request, "console/contact.html", {
        "contact": data.contact, "details": {"tags": data.tags}, "score": sum(c.points for c in data.contributions),
        "contributions": _in_language(request, data.contributions), "items": data.items, "more": data.more,
        "consent": data.consent, "owner": data.owner, "panels": data.panels, "opportunities": data.opportunities,
        "stage_names": {o.stage_id: o.stage_name for o in data.opportunities},
    })  # fmt: skip


def _in_language(request: Request, contributions: list[ScoreContribution]) -> list[ScoreContribution]:
    """Score contributions with their reasons in the page's language (those that give a message)."""
    from crmcore.console.app import environments, language

    describe = environments(crm_of(request)).get(language(request)).filters["describe"]
    return [attrs.evolve(c, reason=describe({"message": c.message, "values": c.values, "terms": c.terms,
                                             "text": c.reason})) if c.message else c
            for c in contributions]  # fmt: skip


ConsentPairs = list[tuple[str, str]]


def _contact_query(crm: CRM) -> tuple[Any, ConsentPairs]:
    """The contact page's first statement (built once per CRM): the contact, its owner (a bundle), its consent.

    The consent columns (one ``EXISTS`` per purpose and channel, the ledger's
    rules) follow the contact and the owner, in the order of the pairs returned.
    """
    cached: tuple[Any, ConsentPairs] | None = getattr(crm, "_console_contact_query", None)
    if cached is not None:
        return cached
    from sqlalchemy.orm import Bundle

    from crmcore.models import Consent, Contact, User

    pairs: ConsentPairs = []
    held: list[Any] = []
    ledger = getattr(crm, "consent", None)
    if ledger is not None:
        pairs = [(purpose, channel) for purpose in CONSENT_PURPOSES for channel in CONSENT_CHANNELS]
        held = [ledger.consented(purpose, channel).where(Consent.contact_id == bindparam("contact_id"))
                .correlate(None).exists() for purpose, channel in pairs]  # fmt: skip
    owner: Bundle[Any] = Bundle("owner", User.id, User.name, User.team_id)  # shown, and the reach check
    statement = (select(Contact, owner, *held).outerjoin(User, User.id == Contact.owner_id)
                 .where(Contact.id == bindparam("contact_id")))  # fmt: skip
    crm._console_contact_query = (statement, pairs)  # type: ignore[attr-defined]
    return statement, pairs


def _consent_grid(pairs: ConsentPairs, answers: Iterable[Any]) -> dict[str, dict[str, bool]]:
    """Purpose by channel: does the contact hold consent."""
    grid: dict[str, dict[str, bool]] = {}
    for (purpose, channel), given in zip(pairs, answers, strict=True):
        grid.setdefault(purpose, {})[channel] = bool(given)
    return grid


def _contact_opportunities(ctx: Any, contact_id: int) -> list[Any]:
    """The contact's opportunities in the user's reach, newest first, with their stage's name (rows)."""
    permissions.require(ctx, "opportunities.view")
    shape, values = permissions.reach(ctx)
    return list(ctx.session.execute(_opportunities_query(shape), {"contact_id": contact_id, **values}))


@functools.cache
def _opportunities_query(shape: str | None) -> Any:
    """The contact page's opportunities, built once per reach shape (:func:`crmcore.permissions.reach`)."""
    from crmcore.models import Opportunity, PipelineStage

    query = (select(Opportunity.id, Opportunity.name, Opportunity.amount, Opportunity.currency,
                    Opportunity.status, Opportunity.stage_id, PipelineStage.name.label("stage_name"))
             .outerjoin(PipelineStage, PipelineStage.id == Opportunity.stage_id)
             .where(Opportunity.contact_id == bindparam("contact_id"))
             .order_by(Opportunity.id.desc()).limit(20))  # fmt: skip
    return query.where(permissions.reach_condition(Opportunity.owner_id, shape)) if shape else query


@staff("contacts.view")
def timeline_page(request: Request, form: FormData | None) -> Response:
    """The next page of a contact's timeline (an htmx fragment, or a whole page without JS)."""
    from crmcore.services.base import get_contact

    crm = crm_of(request)
    contact_id = request.path_params["contact_id"]
    before = request.query_params.get("before")
    with crm.transaction(readonly=True) as ctx:
        contact = get_contact(ctx, contact_id)  # reach check first
        items, more = _timeline(ctx, contact, TimelineCursor.parse(before) if before else None)
    template = "console/_timeline.html" if "hx-request" in request.headers else "console/timeline.html"
    return page(request, template, {"items": items, "more": more, "contact_id": contact_id})


@staff("contacts.edit")
def log_interaction(request: Request, form: FormData | None) -> Response:
    """Log a call or add a note."""
    crm = crm_of(request)
    contact_id = request.path_params["contact_id"]
    kind = _field(form, "kind") or "note"
    if kind not in ("call", "note"):
        raise ValidationError({"kind": N_("log a call or a note")})
    minutes = _field(form, "minutes")
    if minutes and not minutes.isdigit():
        raise ValidationError({"minutes": N_("give whole minutes")})
    body = _field(form, "body", required=N_("the note is required") if kind == "note" else None)
    crm.interactions.log(contact_id, kind=kind, subject=_field(form, "subject") or None, body=body or None,
                         duration_minutes=int(minutes) if minutes else None,
                         direction="out" if kind == "call" else None)  # fmt: skip
    return _back(request, f"contacts/{contact_id}")


@staff("contacts.edit")
def qualify(request: Request, form: FormData | None) -> Response:
    """Make a lead a prospect, with a reason."""
    contact_id = request.path_params["contact_id"]
    crm_of(request).leads.qualify(contact_id, reason=_field(form, "reason", required=REASON_REQUIRED))
    return _back(request, f"contacts/{contact_id}")


@staff("contacts.edit")
def convert(request: Request, form: FormData | None) -> Response:
    """Make a contact a customer by hand, with a reason."""
    contact_id = request.path_params["contact_id"]
    crm_of(request).customers.convert(contact_id, reason=_field(form, "reason", required=REASON_REQUIRED))
    return _back(request, f"contacts/{contact_id}")


@staff("contacts.merge")
def merge(request: Request, form: FormData | None) -> Response:
    """Fold a duplicate (id or email) into this contact."""
    contact_id = request.path_params["contact_id"]
    other = _field(form, "other", required=N_("the duplicate's id or email is required"))
    crm_of(request).contacts.merge(contact_id, other)
    return _back(request, f"contacts/{contact_id}")


@staff("opportunities.edit")
def open_opportunity(request: Request, form: FormData | None) -> Response:
    """Open an opportunity for this contact."""
    contact_id = request.path_params["contact_id"]
    amount = _field(form, "amount") or "0"
    try:
        Decimal(amount)
    except InvalidOperation:
        raise ValidationError({"amount": N_("give an amount like 1200.50")}) from None
    crm_of(request).sales.create_opportunity(contact_id, name=_field(form, "name", required=N_("a name is required")),
                                             amount=amount)  # fmt: skip
    return _back(request, f"contacts/{contact_id}")


# -- the pipeline board ---------------------------------------------------------------


def _board(request: Request) -> dict[str, Any]:
    crm = crm_of(request)
    stages = crm.sales.stages()
    opportunities = crm.sales.list_opportunities(status="open", limit=500)
    names = crm.contacts.names(o.contact_id for o in opportunities if o.contact_id)
    columns = [{"stage": s, "cards": [o for o in opportunities if o.stage_id == s.id]}
               for s in stages if s.outcome == "open"]  # fmt: skip
    return {"columns": columns, "stages": stages, "names": names}


@staff("opportunities.view")
def pipeline(request: Request, form: FormData | None) -> Response:
    """The open opportunities as a board, one column per stage; cards move with a form."""
    return page(request, "console/pipeline.html", _board(request))


@staff("opportunities.edit")
def move_opportunity(request: Request, form: FormData | None) -> Response:
    """Move a card to another stage (won and lost close it); htmx gets the new board back."""
    crm = crm_of(request)
    stage = _field(form, "stage", required=N_("a stage is required"))
    crm.sales.move(request.path_params["opportunity_id"], stage, reason=_field(form, "reason") or None)
    if "hx-request" in request.headers:
        return page(request, "console/_board.html", _board(request))
    return _back(request, "pipeline")


# -- reports --------------------------------------------------------------------------


@staff("reports.view")
def reports(request: Request, form: FormData | None) -> Response:
    """The report dashboard: every enabled plugin's main reports over a date range, in the page's language."""
    from crmcore.reports.i18n import PageLanguage
    from crmcore.reports.render import html_sections

    crm = crm_of(request)
    start = request.query_params.get("from") or None
    end = request.query_params.get("to") or None
    language = PageLanguage(gettext=translator(request), formatter=formatter(request), currency=crm.settings.currency)
    sections = html_sections(crm.reports.dashboard(start=start, end=end), language)
    return page(request, "console/reports.html", {"sections": sections, "start": start or "", "end": end or ""})


# -- campaigns -------------------------------------------------------------------------


def _funnel(rows: list[dict[str, Any]], value: str) -> list[dict[str, Any]]:
    """Funnel steps: each row with its bar's width in percent of the widest."""
    widest = max((row[value] or 0 for row in rows), default=0)
    return [{**row, "width": round(100 * (row[value] or 0) / widest) if widest else 0} for row in rows]


@staff("reports.view")
def campaigns(request: Request, form: FormData | None) -> Response:
    """The funnel (leads to customers, the pipeline by stage), campaigns' cost, revenue and ROI, plugins' panels.

    The figures are the reports' (``sales.conversion``, ``sales.pipeline``,
    ``marketing.roi``) over the chosen range; plugins add panels through
    ``crm_console_campaigns`` (email_marketing: its campaigns with budgets).
    """
    crm = crm_of(request)
    start = request.query_params.get("from") or None
    end = request.query_params.get("to") or None
    conversion = crm.reports.run("sales.conversion", start=start, end=end)
    totals = {name: sum(row[name] or 0 for row in conversion.rows) for name in ("leads", "qualified", "customers")}
    lifecycle = _funnel([{"label": "Leads", "count": totals["leads"]},
                         {"label": "Qualified", "count": totals["qualified"]},
                         {"label": "Customers", "count": totals["customers"]}], "count")  # fmt: skip
    pipeline = crm.reports.run("sales.pipeline", start=start, end=end)
    roi = crm.reports.run("marketing.roi", start=start, end=end)
    with crm.transaction(readonly=True) as ctx:
        panel_context(request, ctx)
        ctx.cache["console_range"] = (conversion.parameters["from"], conversion.parameters["to"])
        panels = _panels(crm.plugins.call("crm_console_campaigns", ctx=ctx))
    return page(request, "console/campaigns.html", {
        "lifecycle": lifecycle, "stages": _funnel(pipeline.rows, "amount"), "roi": roi.rows, "panels": panels,
        "currency": roi.parameters.get("currency") or crm.settings.currency, "start": start or "", "end": end or "",
    })  # fmt: skip


def routes() -> list[BaseRoute]:
    """The core's console routes (paths relative to the console's mount point)."""
    return [
        Route("/", my_day, name="console.my_day"),
        Route("/login", login, methods=["GET", "POST"], name="console.login"),
        Route("/logout", logout, methods=["POST"], name="console.logout"),
        Route("/lang/{code}", set_language, name="console.language"),
        Route("/search", search, name="console.search"),
        Route("/contacts/{contact_id:int}", contact_page, name="console.contact"),
        Route("/contacts/{contact_id:int}/timeline", timeline_page, name="console.timeline"),
        Route("/contacts/{contact_id:int}/interactions", log_interaction, methods=["POST"]),
        Route("/contacts/{contact_id:int}/qualify", qualify, methods=["POST"]),
        Route("/contacts/{contact_id:int}/convert", convert, methods=["POST"]),
        Route("/contacts/{contact_id:int}/merge", merge, methods=["POST"]),
        Route("/contacts/{contact_id:int}/opportunities", open_opportunity, methods=["POST"]),
        Route("/activities/{activity_id:int}/done", activity_done, methods=["POST"]),
        Route("/pipeline", pipeline, name="console.pipeline"),
        Route("/opportunities/{opportunity_id:int}/move", move_opportunity, methods=["POST"]),
        Route("/campaigns", campaigns, name="console.campaigns"),
        Route("/reports", reports, name="console.reports"),
    ]


__all__ = ["ContactPageData", "can", "contact_page_data", "error_page", "routes", "search_hits"]

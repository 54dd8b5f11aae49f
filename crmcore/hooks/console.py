"""Console and account hooks: the host's accounts, and what plugins add to the staff console."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from crmcore.console.menu import MenuEntry, Panel, SearchHit
    from crmcore.context import HookContext
    from crmcore.crm import CRM
    from crmcore.models import Contact, User


@hookspec(firstresult=True)
def crm_host_account_user(account: Any, ctx: HookContext) -> User | int | str | None:
    """Map a host application's signed-in *account* to the CRM user acting for it.

    Decision hook: stops at the first non-None answer. Called by
    ``crm.users.for_host_account(account)`` and by the console when the host
    mounts it behind its own authentication (``request.user`` set by Starlette's
    ``AuthenticationMiddleware``); the user's role and record rules then apply.
    Runs inside a read-only unit of work; must not write.

    :param account: The host's account object (whatever its auth layer gives).
    :param ctx: The unit of work (session, CRM, clock).
    :returns: A ``User``, a user id or email, or ``None`` to abstain.

    .. versionadded:: 0.1
    """


@hookspec
def crm_console_menu(crm: CRM) -> list[MenuEntry]:
    """Add entries to the staff console's menu.

    Collector: every plugin answers; entries are sorted by ``order``. An entry
    with a ``permission`` is shown only to users holding it. Called when the
    console app is built; must not write.

    :param crm: The CRM the console serves.
    :returns: A list of :class:`~crmcore.console.menu.MenuEntry`.

    .. versionadded:: 0.1
    """


@hookspec
def crm_console_routes(crm: CRM) -> list[BaseRoute]:
    """Add pages to the staff console, under ``/console/``.

    Collector, called once when the console app is built. Handlers run behind
    the console's sign-in: ``request.state.user`` is the signed-in user and
    service calls made in the handler act for them (record rules apply); render
    with ``crmcore.console.page(request, template, context)`` so the page gets
    the menu, the CSRF token and the translations. Must not write at build time.

    :param crm: The CRM the console serves.
    :returns: A list of Starlette routes (paths relative to ``/console``).

    .. versionadded:: 0.1
    """


@hookspec
def crm_contact_panels(contact: Contact, ctx: HookContext) -> list[Panel]:
    """Add panels to a contact's console page (tickets, survey answers, invoices, ...).

    Collector: every plugin answers; panels are shown in ``order``. Runs inside
    the read-only unit of work of the page, acting for the signed-in user (so
    services and queries see only what the user may); ``ctx.cache["console_base"]``
    is the console's URL prefix for links. Render the HTML with
    ``crmcore.console.render_panel(ctx, template, **values)`` so it is in the
    page's language; check your plugin's permission and return ``[]`` without
    it. Must not write.

    :param contact: The contact shown (within the user's reach).
    :param ctx: The unit of work, acting for the signed-in user.
    :returns: A list of :class:`~crmcore.console.menu.Panel`.

    .. versionadded:: 0.1
    """


@hookspec
def crm_console_my_day(user: User, ctx: HookContext) -> list[Panel]:
    """Add panels to the signed-in user's "my day" page (SLA deadlines at risk, surveys to read, ...).

    Collector: every plugin answers; panels are shown in ``order``. Runs inside
    a read-only unit of work acting for *user*; render the HTML with
    ``crmcore.console.render_panel``. Must not write.

    :param user: The signed-in user.
    :param ctx: The unit of work, acting for the user.
    :returns: A list of :class:`~crmcore.console.menu.Panel`.

    .. versionadded:: 0.1
    """


@hookspec
def crm_console_campaigns(ctx: HookContext) -> list[Panel]:
    """Add panels to the console's campaigns page (email campaigns with budget, cost and ROI, ...).

    Collector: every plugin answers; panels are shown in ``order`` below the
    core's funnel and ROI table. Runs inside the page's read-only unit of work,
    acting for the signed-in user (who holds ``reports.view``); render with
    ``crmcore.console.render_panel``. ``ctx.cache["console_range"]`` holds the
    page's ``(start, end)`` local dates (``None`` when open). Must not write.

    :param ctx: The unit of work, acting for the signed-in user.
    :returns: A list of :class:`~crmcore.console.menu.Panel`.

    .. versionadded:: 0.1
    """


@hookspec
def crm_console_search(text: str, ctx: HookContext) -> list[SearchHit]:
    """Answer the console's search box with a plugin's records (tickets, invoices, ...).

    Collector: every plugin answers; hits are grouped by ``kind``. Runs inside
    a read-only unit of work acting for the signed-in user: return only what
    the user may see. Must not write.

    :param text: What the user typed (stripped, at least two characters).
    :param ctx: The unit of work, acting for the user.
    :returns: A list of :class:`~crmcore.console.menu.SearchHit` (at most about 20).

    .. versionadded:: 0.1
    """

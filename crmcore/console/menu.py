"""What plugins add to the console: menu entries and contact-page panels."""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class MenuEntry:
    """A link in the console's menu (``crm_console_menu``)."""

    #: The text shown; translated through the console's catalogs when it has a translation.
    label: str
    #: Path under the console (``tickets``) or an absolute URL path (``/console/tickets``).
    path: str
    #: Shown only to users holding this permission.
    permission: str | None = None
    #: Position in the menu (core entries use 10, 20, ...).
    order: int = 100


@attrs.frozen(kw_only=True)
class Panel:
    """A box on a contact's page (``crm_contact_panels``): a title and an HTML fragment.

    Render *html* with ``crm.templates`` (autoescaped) so data typed by users stays escaped.
    """

    title: str
    html: str
    order: int = 100


@attrs.frozen(kw_only=True)
class SearchHit:
    """One search result a plugin contributes (``crm_console_search``)."""

    #: What it is, shown as a group heading: ``Tickets``.
    kind: str
    title: str
    #: Path under the console (``tickets/TK-7F3K-9QWD``).
    path: str
    detail: str = ""

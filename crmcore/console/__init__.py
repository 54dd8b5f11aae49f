"""The staff console: server-rendered pages under ``/console/`` for reps, agents, marketers and managers.

Plugins add menu entries (``crm_console_menu``), pages (``crm_console_routes``,
wrapped with :func:`staff` and rendered with :func:`page`), contact panels
(``crm_contact_panels``, rendered in the page's language with
:func:`render_panel`) and "my day" panels (``crm_console_my_day``). A
bundle overrides any ``console/*.html`` template by shipping the same path
earlier in the template search path.
"""

from __future__ import annotations

from crmcore.console.app import base_path, console_app, error_page, page, render_panel, staff
from crmcore.console.menu import MenuEntry, Panel, SearchHit

__all__ = [
    "MenuEntry", "Panel", "SearchHit", "base_path", "console_app", "error_page", "page", "render_panel", "staff",
]

"""Web hooks: plugins add routes to the ASGI app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from crmcore.crm import CRM


@hookspec
def crm_register_routes(crm: CRM) -> list[BaseRoute]:
    """Add Starlette routes (or mounts) to the web app ``crm.asgi_app()``.

    Called once when the app is built. Put a plugin's routes under its URL
    prefix (``Mount("/ticketing", routes=[...])``); handlers reach the CRM as
    ``request.app.state.crm`` and render with ``crmcore.web.render``. Raise
    :class:`~crmcore.errors.CRMError` subclasses for bad input: the app answers
    4xx with the message (JSON or HTML), never a stack trace.

    :param crm: The CRM the app serves.
    :returns: A list of Starlette routes.

    .. versionadded:: 0.1
    """

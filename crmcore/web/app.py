"""``uvicorn --factory crmcore.web.app:factory``: the app of a CRM built from settings (env, crm.toml)."""

from __future__ import annotations

from starlette.applications import Starlette


def factory() -> Starlette:
    """Build a CRM from ``CRMCORE_*`` / ``crm.toml`` and return its web app."""
    from crmcore.crm import CRM

    return CRM().asgi_app()

"""The shop's CRM: built once from the shop's engine, with the plugins the shop chose.

``make_crm`` is also the factory the worker uses (``CRMCORE_CRM_FACTORY=host_shop.crm:make_crm``),
so ``crm worker`` runs the shop's jobs with exactly the shop's plugins and settings.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine, create_engine, select

from crmcore import CRM, hookimpl
from crmcore.context import HookContext


class ShopAccounts:
    """Maps a signed-in shop account to the CRM user with the same email (the console then trusts it)."""

    @hookimpl
    def crm_host_account_user(self, account: Any, ctx: HookContext) -> str | None:
        from crmcore.models import User

        email = getattr(account, "email", None)
        if not email:
            return None
        found = ctx.session.scalar(select(User.email).where(User.email == email.lower()))
        return found


def make_engine(database_url: str | None = None) -> Engine:
    """The shop's engine (``SHOP_DATABASE_URL``; a SQLite file by default)."""
    return create_engine(database_url or os.environ.get("SHOP_DATABASE_URL", "sqlite:///shop.db"))


def make_crm(engine: Engine | None = None, **settings: Any) -> CRM:
    """The shop's CRM on the shop's engine: ticketing plus the account mapping."""
    options: dict[str, Any] = {
        "environment": os.environ.get("SHOP_ENVIRONMENT", "development"),
        "secret_key": os.environ.get("SHOP_SECRET_KEY", "dev-only-secret-of-the-example-shop-0123456789"),
        "base_url": os.environ.get("SHOP_BASE_URL", "http://127.0.0.1:8000/crm"),
        "mail_dir": os.environ.get("SHOP_MAIL_DIR", "shop-mail"),
    }
    options.update(settings)
    return CRM(engine=engine or make_engine(), plugins=["ticketing", ShopAccounts()], **options)

"""A contact's timeline: everything that happened to them, newest first, paged."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from crmcore.models import Contact

if TYPE_CHECKING:
    from crmcore.context import HookContext


def timeline(ctx: HookContext, contact: Contact, *, limit: int, before: datetime | None) -> list[dict[str, Any]]:
    """Merge every plugin's items (the core's included) and keep the newest *limit*."""
    limit = max(1, min(limit, 500))
    items: list[dict[str, Any]] = []
    for plugin, answer in ctx.crm.plugins.collect_by_plugin(
        "crm_contact_timeline", contact=contact, before=before, limit=limit, ctx=ctx
    ):
        items.extend({"source": plugin, **item} for item in answer)
    items.sort(key=lambda item: item["at"], reverse=True)
    return items[:limit]

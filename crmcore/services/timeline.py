"""A contact's timeline: everything that happened to them, newest first, paged by a keyset.

Items are ordered by ``(at, key, id)``, newest first: *key* names the kind of
row (``touchpoint``, ``accounting_bridge.invoice``) and *id* its primary key.
A page ends at a :class:`TimelineCursor` on the last item, and the next page
starts strictly after it in that order, so items sharing a timestamp are never
skipped nor repeated.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import and_, or_

from crmcore.errors import ValidationError
from crmcore.models import Contact

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

    from crmcore.context import HookContext


@attrs.frozen
class TimelineCursor:
    """The last item of a timeline page: its time, key and id; the next page starts after it."""

    at: datetime
    key: str
    id: int

    def token(self) -> str:
        """The cursor as text for a URL: ``2026-11-29T05:00:00+00:00~touchpoint~42``."""
        return f"{self.at.isoformat()}~{self.key}~{self.id}"

    @classmethod
    def parse(cls, text: str) -> TimelineCursor:
        """Read a :meth:`token` (or a bare aware timestamp: everything strictly older)."""
        at_text, _, rest = text.partition("~")
        key, _, id_text = rest.partition("~")
        try:
            at = datetime.fromisoformat(at_text)
        except ValueError:
            raise ValidationError({"before": "not a timeline position"}) from None
        if at.tzinfo is None:
            raise ValidationError({"before": "give a time zone"})
        if not rest:
            return cls(at=at, key="", id=0)  # "" sorts before every key: all items at *at* are excluded
        if not key or not id_text.isdigit():
            raise ValidationError({"before": "not a timeline position"})
        return cls(at=at, key=key, id=int(id_text))

    @classmethod
    def of(cls, item: dict[str, Any]) -> TimelineCursor:
        """The cursor on *item* (a timeline item)."""
        return cls(at=item["at"], key=item["key"], id=item["id"])


def older(cursor: TimelineCursor | None, key: str, at: Any, row_id: Any) -> ColumnElement[bool] | None:
    """The WHERE condition of rows of kind *key* after *cursor* in timeline order (None: no cursor).

    :param at: The rows' timestamp column.
    :param row_id: The rows' id column.
    """
    if cursor is None:
        return None
    if key < cursor.key:
        return at <= cursor.at  # type: ignore[no-any-return]
    if key > cursor.key:
        return at < cursor.at  # type: ignore[no-any-return]
    return or_(at < cursor.at, and_(at == cursor.at, row_id < cursor.id))


def _order(item: dict[str, Any]) -> tuple[datetime, str, int]:
    return item["at"], item["key"], item["id"]


def timeline(
    ctx: HookContext, contact: Contact, *, limit: int, before: datetime | TimelineCursor | None
) -> list[dict[str, Any]]:
    """Merge every plugin's items (the core's included) and keep the newest *limit* after *before*."""
    limit = max(1, min(limit, 500))
    cursor = before if isinstance(before, TimelineCursor) else None
    if isinstance(before, datetime):
        cursor = TimelineCursor(at=before, key="", id=0)
    items: list[dict[str, Any]] = []
    for plugin, answer in ctx.crm.plugins.collect_by_plugin(
        "crm_contact_timeline", contact=contact, before=cursor.at if cursor else None, cursor=cursor,
        limit=limit, ctx=ctx,
    ):  # fmt: skip
        for item in answer:
            items.append({"source": plugin, "key": plugin, "id": 0, **item})
    if cursor is not None:  # also for plugins that page by time alone
        last = _order(attrs.asdict(cursor, recurse=False))
        items = [item for item in items if _order(item) < last]
    items.sort(key=_order, reverse=True)
    return items[:limit]


__all__ = ["TimelineCursor", "older", "timeline"]

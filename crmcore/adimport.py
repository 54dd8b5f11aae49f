"""``crm touch import``: impressions, clicks and spend from an ad platform's CSV export.

Each row becomes (or updates) one :class:`~crmcore.models.AdSpend` row per
day, source, campaign and ad, so importing the same export twice leaves the
same figures. Column names of the common exports are understood (Google Ads:
Day, Campaign, Ad, Impr., Clicks, Cost, Currency code; Meta: Reporting starts,
Campaign name, Ad name, Impressions, Link clicks, Amount spent (EUR)); report
title lines above the header and a ``Total`` line are skipped. Every row is
checked first: one bad row refuses the file, naming each bad row, and nothing
is written.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
from sqlalchemy import select

from crmcore.errors import ValidationError
from crmcore.models import AdSpend
from crmcore.validation import clean_text, currency_code, parse_date

#: Accepted header names (lower-cased) for each column.
ALIASES: dict[str, tuple[str, ...]] = {
    "day": ("day", "date", "reporting starts", "reporting_starts"),
    "campaign": ("campaign", "campaign name", "campaign_name"),
    "ad": ("ad", "ad name", "ad_name"),
    "impressions": ("impressions", "impr.", "impr"),
    "clicks": ("clicks", "link clicks", "link_clicks"),
    "spend": ("cost", "spend", "amount spent", "amount_spent"),
    "currency": ("currency", "currency code", "currency_code"),
    "affiliate": ("affiliate",),
}
MAX_ERRORS = 20


@attrs.frozen
class AdImportResult:
    """How many rows an import read, created and updated."""

    rows: int
    created: int
    updated: int


def _columns(header: list[str]) -> dict[str, int] | None:
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    found: dict[str, int] = {}
    for column, aliases in ALIASES.items():
        for index, name in enumerate(names):
            if name in aliases or (column == "spend" and name.startswith("amount spent")):
                found.setdefault(column, index)
    return found if {"day", "campaign", "impressions"} <= set(found) else None


def _whole(text: str, field: str) -> int:
    cleaned = text.strip().replace(",", "") or "0"
    if not cleaned.isdigit() or len(cleaned) > 12:
        raise ValidationError({field: f"{text!r} is not a whole number"})
    return int(cleaned)


def _amount(text: str, field: str) -> Decimal:
    cleaned = text.strip().replace(",", "") or "0"
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValidationError({field: f"{text!r} is not an amount"}) from None
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e13"):
        raise ValidationError({field: f"{text!r} is not an amount"})
    return amount


def parse_rows(text: str, *, currency: str) -> list[dict[str, Any]]:
    """The checked rows of a CSV export; ValidationError naming every bad row."""
    reader = csv.reader(io.StringIO(text))
    columns = None
    line = 0
    for row in reader:
        line += 1
        columns = _columns(row)
        if columns is not None or line >= 10:
            break
    if columns is None:
        raise ValidationError({"file": "no header with day, campaign and impressions columns in the first 10 lines"})
    rows: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    seen: dict[tuple[date, str, str], int] = {}
    for row in reader:
        line += 1
        if not any(cell.strip() for cell in row) or row[0].strip().lower().startswith("total"):
            continue

        def cell(name: str, row: list[str] = row) -> str:
            index = columns.get(name) if columns else None
            return row[index] if index is not None and index < len(row) else ""

        try:
            day = parse_date(cell("day").strip(), "day")
            if day is None:
                raise ValidationError({"day": "is required"})
            values: dict[str, Any] = {
                "day": day,
                "campaign": clean_text(cell("campaign"), "campaign", 255, required=True),
                "ad": clean_text(cell("ad"), "ad", 255) or "",
                "affiliate": clean_text(cell("affiliate"), "affiliate", 255),
                "impressions": _whole(cell("impressions"), "impressions"),
                "platform_clicks": _whole(cell("clicks"), "clicks"),
                "spend": _amount(cell("spend"), "spend"),
                "currency": currency_code(cell("currency") or None, currency),
            }
        except ValidationError as exc:
            errors[f"row {line}"] = "; ".join(f"{k}: {v}" for k, v in exc.errors.items())
            if len(errors) >= MAX_ERRORS:
                break
            continue
        key = (values["day"], values["campaign"], values["ad"])
        if key in seen:
            errors[f"row {line}"] = f"repeats the day, campaign and ad of row {seen[key]}"
            continue
        seen[key] = line
        rows.append(values)
    if errors:
        raise ValidationError(errors)
    return rows


def import_ad_spend(crm: Any, source_file: Iterable[str] | str, *, source: str, currency: str | None = None,
                    actor: Any = None) -> AdImportResult:  # fmt: skip
    """Import an ad platform's CSV (text or a text file) as ad spend of *source*; all or nothing."""
    text = source_file if isinstance(source_file, str) else "".join(source_file)
    source_name = clean_text(source, "source", 255, required=True)
    rows = parse_rows(text, currency=crm.settings.currency if currency is None else currency)
    created = updated = 0
    with crm.transaction(actor) as ctx:
        days = sorted({r["day"] for r in rows})
        existing: dict[tuple[date, str, str], AdSpend] = {}
        if days:
            for spend in ctx.session.scalars(
                select(AdSpend).where(AdSpend.source == source_name, AdSpend.day.between(days[0], days[-1]))
            ):
                existing[(spend.day, spend.campaign, spend.ad)] = spend
        for values in rows:
            found = existing.get((values["day"], values["campaign"], values["ad"]))
            if found is None:
                ctx.session.add(AdSpend(source=source_name, imported_at=ctx.now, **values))
                created += 1
            else:
                for key, value in values.items():
                    setattr(found, key, value)
                found.imported_at = ctx.now
                updated += 1
        ctx.audit("adspend.import", "ad_spend", None, {"source": source_name, "rows": len(rows),
                                                       "created": created, "updated": updated})  # fmt: skip
    return AdImportResult(rows=len(rows), created=created, updated=updated)

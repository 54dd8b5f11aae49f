"""Email marketing reports (filled in below) and the campaign cost contribution."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, String, cast, literal, null, select

from crmcore_email_marketing.models import Campaign

if TYPE_CHECKING:
    from crmcore.reports import Report, ReportQuery


def registered_reports() -> list[Report]:
    """The plugin's reports."""
    return []


def cost_contribution(query: ReportQuery) -> Select[Any]:
    """Each started campaign's actual cost on its start day (local), as source ``email``."""
    return select(
        Campaign.started_on.label("day"),
        literal("email", String(255)).label("source"),
        cast(Campaign.name, String(255)).label("campaign"),
        null().label("affiliate"),
        Campaign.actual_cost.label("cost"),
        Campaign.currency.label("currency"),
    ).where(Campaign.started_on.is_not(None))

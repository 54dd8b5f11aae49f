"""Email marketing in the staff console: the campaigns panel of the campaigns page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crmcore.console import Panel, render_panel

if TYPE_CHECKING:
    from crmcore.context import HookContext

#: Campaigns listed, newest first.
PANEL_CAMPAIGNS = 50


def campaigns_panels(ctx: HookContext) -> list[Panel]:
    """Every recent campaign: state, budget and actual cost, and the ``email_marketing.campaigns`` figures."""
    from crmcore_email_marketing.models import Campaign

    start, end = ctx.cache.get("console_range", (None, None))
    report = ctx.crm.reports.run("email_marketing.campaigns", start=start, end=end)
    figures: dict[str, dict[str, Any]] = {row["campaign"]: row for row in report.rows}
    rows = ctx.session.scalars(select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc())
                               .limit(PANEL_CAMPAIGNS)).all()  # fmt: skip
    html = render_panel(ctx, "email_marketing/console/_campaigns.html", campaigns=rows, figures=figures,
                        currency=report.parameters.get("currency") or ctx.crm.settings.currency)  # fmt: skip
    return [Panel(title="Email campaigns", html=html, order=50)]

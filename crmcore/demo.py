"""``crm demo``: a fresh SQLite CRM taken through the lead-to-customer lifecycle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

#: The plugins the demo runs with (installed examples stay out of it).
PRODUCT_PLUGINS = ["email_marketing", "ticketing", "surveys", "accounting_bridge"]


def run_demo(database: Path, echo: Callable[[str], Any] = click.echo) -> dict[str, Any]:
    """Build a CRM on a fresh *database* file, run the lifecycle, and return the figures."""
    from crmcore.crm import CRM
    from crmcore.migrate import upgrade

    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    crm = CRM(database_url=f"sqlite:///{database}", plugins=PRODUCT_PLUGINS)
    upgrade(crm)
    echo(f"CRM on {database} with plugins: {', '.join(crm.plugins.names)}")
    crm.users.add("rita@example.com", "Rita Rep")
    crm.users.add("sam@example.com", "Sam Seller")
    crm.products.add("PRO", "Pro plan", unit_price="99.00", category="subscriptions")
    crm.products.add("ONBOARD", "Onboarding", unit_price="450.00", category="services")
    leads = [
        crm.leads.capture(email="ada@example.com", first_name="Ada", last_name="Lovelace",
                          organization="Analytical Engines", title="CTO",
                          touch={"kind": "form", "utm_source": "google", "utm_campaign": "spring"}),
        crm.leads.capture(email="grace@example.com", first_name="Grace", phone="+1 415 555 2671",
                          touch={"kind": "ad_click", "ad": "search-1", "source": "google"}),
        crm.leads.capture(email="alan@example.com", first_name="Alan",
                          touch={"kind": "affiliate_click", "affiliate": "partner-blog"}),
    ]  # fmt: skip
    again = crm.leads.capture(email="ADA@example.com", touch={"kind": "email_click", "campaign": "spring"})
    crm.leads.qualify(leads[0].id, reason="asked for a demo", actor="rita@example.com")
    crm.interactions.log(leads[0].id, kind="call", subject="Demo call", duration_minutes=30,
                         actor="rita@example.com")  # fmt: skip
    deal = crm.sales.create_opportunity(leads[0].id, name="Annual Pro plan", amount="1188.00")
    crm.sales.move(deal.id, "proposal", actor="rita@example.com")
    crm.sales.win(deal.id, actor="rita@example.com")
    crm.customers.record_purchase(leads[0].id, lines=[{"sku": "PRO", "quantity": 12}, {"sku": "ONBOARD"}],
                                  special_instructions="Invoice the Berlin office")  # fmt: skip
    crm.customers.record_purchase(leads[1].id, sku="PRO")
    lost = crm.sales.create_opportunity(leads[2].id, name="Pilot", amount="300")
    crm.sales.lose(lost.id, reason="no budget this year")
    crm.sales.add_activity(kind="follow_up", subject="Ask Alan again in spring", contact=leads[2].id,
                           remind_at=crm.clock.now())  # fmt: skip
    jobs_run = crm.jobs.run_due()
    figures = {
        "captured": len(leads),
        "recaptured_as_touch": int(not again.created),
        "customers": len(crm.contacts.list(stage="customer")),
        "leads_left": len(crm.contacts.list(stage="lead")),
        "jobs_run": jobs_run,
    }
    for contact in crm.contacts.list(limit=10):
        echo(f"  {contact.email:<22} {contact.stage:<9} score {contact.score}")
    echo(
        f"captured {figures['captured']} leads ({figures['recaptured_as_touch']} came back as a touchpoint), "
        f"converted {figures['customers']} to customers, {figures['leads_left']} still leads; "
        f"{jobs_run} job(s) run by the worker"
    )
    crm.dispose()
    return figures


@click.command()
@click.option("--output", default="demo.db", show_default=True, type=click.Path(dir_okay=False),
              help="SQLite file to create (an existing one is replaced: every run starts fresh).")  # fmt: skip
def demo(output: str) -> None:
    """Run the demo: a fresh SQLite CRM taken from leads to customers.

    \b
    Example:
      crm demo --output /tmp/demo.db
    """
    run_demo(Path(output))


COMMANDS = [demo]

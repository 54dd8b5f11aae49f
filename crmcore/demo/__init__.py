"""``crm demo``: a year of a small software company's CRM, simulated on a fresh SQLite file.

The simulation (``crmcore.demo.simulation``) captures leads from ads, forms and
affiliates, qualifies them, works deals through the pipeline and records
purchases, day by day, through the CRM's services; the shop posts each purchase
as a conversion and the ad platforms' monthly exports bring impressions and
spend, so CTR, conversions and ROI by ad, affiliate and source have figures;
every enabled plugin adds its
part through ``crm_demo_day`` (tickets and SLA timers, campaigns, surveys,
invoices). After each simulated week the worker runs the timers due by then.
At the end the report dashboard is written as one HTML file.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click

#: The plugins the demo runs with (installed examples stay out of it).
PRODUCT_PLUGINS = ["email_marketing", "ticketing", "surveys", "accounting_bridge"]
#: The simulated year.
START, DAYS = date(2025, 12, 1), 365


def run_demo(
    database: Path,
    echo: Callable[[str], Any] = click.echo,
    *,
    days: int = DAYS,
    plugins: list[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Simulate *days* on a fresh *database* file; write the dashboard; return the summary figures."""
    import shutil

    from crmcore.clock import FrozenClock
    from crmcore.crm import CRM
    from crmcore.demo.simulation import Simulation
    from crmcore.migrate import upgrade
    from crmcore.reports.render import html_page

    began = time.perf_counter()
    replaced = database.exists()
    mail_dir = database.with_name(f"{database.stem}-mail")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(mail_dir, ignore_errors=True)
    clock = FrozenClock(f"{START.isoformat()}T08:00:00+00:00")
    crm = CRM(database_url=f"sqlite:///{database}", plugins=PRODUCT_PLUGINS if plugins is None else plugins,
              clock=clock, mail_dir=str(mail_dir), base_url="http://127.0.0.1:8000")  # fmt: skip
    try:
        upgrade(crm)
        fresh = "Replaced the previous demo: a fresh" if replaced else "A fresh"
        named = [name for name in crm.plugins.names if name in crm.plugins.plugins]  # installed, not helpers
        echo(f"{fresh} CRM in {database} with plugins {', '.join(named)}; "
             f"simulating {days} days from {START}...")  # fmt: skip
        simulation = Simulation(crm, clock, START, days)
        if progress:
            with click.progressbar(length=days, label="simulating", file=None) as bar:
                counts = simulation.run(progress=lambda done: bar.update(done - bar.pos))
        else:
            counts = simulation.run()
        end = START + timedelta(days=days - 1)
        dashboard = database.with_name(f"{database.stem}-dashboard.html")
        results = crm.reports.dashboard(start=START, end=end)
        dashboard.write_text(html_page(crm, results, title=f"crmcore demo: {START} to {end}"), encoding="utf-8")
        figures: dict[str, Any] = dict(sorted(counts.items()))
        figures["seconds"] = round(time.perf_counter() - began, 1)
        _summary(echo, counts, crm, database, dashboard, mail_dir, figures["seconds"])
        return figures
    finally:
        crm.dispose()


def _summary(echo: Callable[[str], Any], counts: Counter[str], crm: Any, database: Path, dashboard: Path,
             mail_dir: Path, seconds: float) -> None:  # fmt: skip
    leads, customers = counts["leads captured"], counts["customers won"]
    rate = f" ({100 * customers / leads:.1f} % of leads)" if leads else ""
    echo("")
    echo(f"Captured   {leads} leads, {counts['touchpoints recorded']} more touches; qualified "
         f"{counts['leads qualified']}")  # fmt: skip
    echo(f"Converted  {customers} to customers{rate}: {counts['opportunities won']} deals won, "
         f"{counts['opportunities lost']} lost, {counts['purchases recorded']} purchases")  # fmt: skip
    echo(f"Marketing  {counts['conversions posted by the shop']} conversions posted by the shop, credited to "
         f"their last click; {counts['ad platform rows imported']} days of ad impressions and spend imported")
    shown = {"leads captured", "touchpoints recorded", "leads qualified", "customers won", "opportunities won",
             "opportunities lost", "purchases recorded", "opportunities opened", "jobs run by the worker",
             "conversions posted by the shop", "ad platform rows imported"}  # fmt: skip
    label = "Plugins   "
    for what, n in sorted(counts.items()):
        if what not in shown:
            echo(f"{label} {n} {what}")
            label = "          "
    mails = len(list(mail_dir.glob("*.eml"))) if mail_dir.exists() else 0
    echo(f"Worker     ran {counts['jobs run by the worker']} jobs and timers; {mails} emails written to {mail_dir}/")
    echo(f"Dashboard  {dashboard}")
    echo(f"Database   {database} (run `crm --database-url sqlite:///{database} contact list` to look around;")
    echo(f"           `crm demo` again starts fresh)  [{seconds:.1f} s]")


@click.command()
@click.option("--output", default="demo.db", show_default=True, type=click.Path(dir_okay=False),
              help="SQLite file to create (an existing one is replaced: every run starts fresh).")
@click.option("--days", default=DAYS, show_default=True, type=click.IntRange(1, 3660),
              help="How many days to simulate.")  # fmt: skip
def demo(output: str, days: int) -> None:
    """Run the demo: a year of a software company's CRM, simulated on a fresh SQLite file.

    Leads from ads, forms and affiliates, qualification, deals and purchases,
    plus every enabled plugin's part (tickets with SLA timers, campaigns,
    surveys, invoices); the worker runs the timers as the year goes by. Prints
    a summary and writes the report dashboard next to the database
    (demo-dashboard.html). Finishes in under a minute.

    \b
    Examples:
      crm demo
      crm demo --output /tmp/demo.db --days 90
    """
    run_demo(Path(output), days=days, progress=True)


COMMANDS = [demo]

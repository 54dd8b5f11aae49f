"""Purchases, products and opportunities on the command line."""

from __future__ import annotations

from typing import Any

import click

from crmcore.cli import get_crm
from crmcore.cli.output import emit, emit_record, format_option

OPPORTUNITY_COLUMNS = ["id", "name", "contact_id", "stage", "amount", "currency", "status", "owner_id"]


@click.group()
def purchase() -> None:
    """Purchases: what customers bought, when, from whom, at which price."""


@purchase.command("record")
@click.argument("ref")
@click.option("--sku", required=True, help="Product SKU.")
@click.option("--price", help="Unit price (default: the product's list price).")
@click.option("--quantity", default=1, show_default=True, type=int)
@click.option("--currency", help="ISO currency (default: the CRM's).")
@click.option("--at", "purchased_at", help="When (ISO 8601; default now).")
@click.option("--rep", help="Selling rep (id or email).")
@click.option("--instructions", "special_instructions", help="Special instructions.")
@click.option("--ref", "external_ref", help="Order number in the shop (recording it twice is refused).")
@format_option
def purchase_record(ref: str, fmt: str, **options: Any) -> None:
    """Record a purchase; a contact's first one makes them a customer.

    \b
    Example:
      crm purchase record ada@example.com --sku PRO --price 99.00 --ref ORDER-1001
    """
    recorded = get_crm().customers.record_purchase(ref, **options)
    emit_record({"id": recorded.id, "contact_id": recorded.contact_id, "total": recorded.total,
                 "currency": recorded.currency, "purchased_at": recorded.purchased_at}, fmt)  # fmt: skip


@click.group()
def product() -> None:
    """The product catalogue."""


@product.command("add")
@click.argument("sku")
@click.option("--name", required=True)
@click.option("--price", "unit_price", help="List price.")
@click.option("--currency")
@click.option("--category")
def product_add(sku: str, **options: Any) -> None:
    """Add a product.

    \b
    Example:
      crm product add PRO --name "Pro plan" --price 99.00 --category subscriptions
    """
    added = get_crm().products.add(sku, options.pop("name"), **options)
    click.echo(f"product {added.sku} added")


@product.command("list")
@format_option
def product_list(fmt: str) -> None:
    """List products.

    \b
    Example:
      crm product list --format csv
    """
    columns = ["sku", "name", "category", "unit_price", "currency", "active"]
    emit([{c: getattr(p, c) for c in columns} for p in get_crm().products.list()], fmt, columns)


@click.group()
def opportunity() -> None:
    """Opportunities through the sales pipeline."""


def _opportunity_row(opp: Any, stages: dict[int, str]) -> dict[str, Any]:
    row = {c: getattr(opp, c) for c in OPPORTUNITY_COLUMNS if c != "stage"}
    row["stage"] = stages.get(opp.stage_id, str(opp.stage_id))
    return row


def _stage_names() -> dict[int, str]:
    return get_crm().sales.stage_keys()


@opportunity.command("add")
@click.option("--contact", "contact_ref", help="Contact (id or email).")
@click.option("--name", required=True)
@click.option("--amount", default="0")
@click.option("--currency")
@click.option("--stage", help="Open stage to start in (default: the first).")
@click.option("--pipeline", help="Pipeline name (default: the default pipeline).")
@click.option("--owner", help="Owning rep (id or email).")
@click.option("--close-on", "expected_close_on", help="Expected close date (YYYY-MM-DD).")
@format_option
def opportunity_add(contact_ref: str | None, fmt: str, **options: Any) -> None:
    """Open an opportunity.

    \b
    Example:
      crm opportunity add --contact ada@example.com --name "Annual plan" --amount 12000 --close-on 2026-12-31
    """
    created = get_crm().sales.create_opportunity(contact_ref, **options)
    emit_record(_opportunity_row(created, _stage_names()), fmt)


@opportunity.command("move")
@click.argument("opportunity_id", type=int)
@click.argument("stage")
def opportunity_move(opportunity_id: int, stage: str) -> None:
    """Move an opportunity to another stage of its pipeline.

    \b
    Example:
      crm opportunity move 7 proposal
    """
    get_crm().sales.move(opportunity_id, stage)
    click.echo(f"opportunity {opportunity_id} moved to {stage}")


@opportunity.command("won")
@click.argument("opportunity_id", type=int)
def opportunity_won(opportunity_id: int) -> None:
    """Mark an opportunity won (its contact becomes a customer).

    \b
    Example:
      crm opportunity won 7
    """
    get_crm().sales.win(opportunity_id)
    click.echo(f"opportunity {opportunity_id} won")


@opportunity.command("lost")
@click.argument("opportunity_id", type=int)
@click.option("--reason", required=True)
def opportunity_lost(opportunity_id: int, reason: str) -> None:
    """Mark an opportunity lost, with the reason.

    \b
    Example:
      crm opportunity lost 7 --reason "went with a competitor"
    """
    get_crm().sales.lose(opportunity_id, reason=reason)
    click.echo(f"opportunity {opportunity_id} lost")


@opportunity.command("list")
@click.option("--status", type=click.Choice(["open", "won", "lost"]), default="open", show_default=True)
@format_option
def opportunity_list(status: str, fmt: str) -> None:
    """List opportunities.

    \b
    Example:
      crm opportunity list --status won --format json
    """
    stages = _stage_names()
    rows = [_opportunity_row(o, stages) for o in get_crm().sales.list_opportunities(status=status)]
    emit(rows, fmt, OPPORTUNITY_COLUMNS)


COMMANDS = [purchase, product, opportunity]

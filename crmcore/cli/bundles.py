"""``crm bundle list|show|apply``: vendors' ready-made defaults."""

from __future__ import annotations

import click

from crmcore.cli import get_crm
from crmcore.cli.output import emit, emit_record, format_option


@click.group()
def bundle() -> None:
    """Vendor bundles: an industry's pipeline, fields, SLA policies, surveys and templates."""


@bundle.command("list")
@format_option
def list_bundles(fmt: str) -> None:
    """List the bundles the enabled plugins ship, with the version applied here (if any).

    \b
    Example:
      crm bundle list
    """
    crm = get_crm()
    rows = [
        {"name": b.name, "version": b.version, "applied": crm.bundles.applied_version(b.name) or "-",
         "items": len(b.items), "title": b.title}
        for b in sorted(crm.bundles.available().values(), key=lambda b: b.name)
    ]  # fmt: skip
    emit(rows, fmt, ["name", "version", "applied", "items", "title"])


@bundle.command("show")
@click.argument("name")
@format_option
def show_bundle(name: str, fmt: str) -> None:
    """Show what bundle NAME contains: each item's kind and key.

    \b
    Example:
      crm bundle show dental-clinic
    """
    crm = get_crm()
    found = crm.bundles.get(name)
    emit_record({"name": found.name, "version": found.version, "title": found.title,
                 "items": [f"{item.kind} {item.key}" for item in found.items]}, fmt)  # fmt: skip


@bundle.command("apply")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Show what would change, and change nothing.")
@format_option
def apply_bundle(name: str, dry_run: bool, fmt: str) -> None:
    """Install bundle NAME's defaults, in one transaction.

    Idempotent: applying twice changes nothing. A newer version of the bundle
    upgrades the items it made, unless a user edited or deleted them since
    (those are kept, and listed as such). Each item is reported as created,
    upgraded, unchanged or kept (with why).

    \b
    Examples:
      crm bundle apply dental-clinic --dry-run
      crm bundle apply dental-clinic
    """
    outcomes = get_crm().bundles.apply(name, dry_run=dry_run)
    emit([{"kind": o.kind, "key": o.key, "outcome": o.outcome, "why": o.reason} for o in outcomes], fmt,
         ["kind", "key", "outcome", "why"])  # fmt: skip
    if dry_run and fmt == "table":
        click.echo("dry run: nothing was changed", err=True)


COMMANDS = [bundle]

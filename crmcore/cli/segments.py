"""Saved segments on the command line: ``crm segment create|list|show|members|delete``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from crmcore.cli import get_crm
from crmcore.cli.contacts import LIST_COLUMNS
from crmcore.cli.output import emit, emit_record, format_option, to_json


def _definition(text: str) -> str:
    """A definition given inline as JSON, or as ``@file.json``."""
    if text.startswith("@"):
        return Path(text[1:]).read_text(encoding="utf-8")
    return text


@click.group()
def segment() -> None:
    """Saved segments of contacts (by fields, tags, touchpoints, purchases, consent)."""


@segment.command("create")
@click.argument("name")
@click.argument("definition")
@click.option("--description", help="What the segment is for.")
@click.option("--replace", is_flag=True, help="Replace the definition of an existing segment.")
def segment_create(name: str, definition: str, description: str | None, replace: bool) -> None:
    """Save a segment NAME with a JSON DEFINITION (or @file.json).

    \b
    Examples:
      crm segment create vip-customers '{"all": [{"field": "stage", "value": "customer"}, {"tag": "vip"}]}'
      crm segment create clicked-spring '{"touchpoint": {"campaign": "spring", "within_days": 30}}'
      crm segment create big-spenders @big-spenders.json
    """
    crm = get_crm()
    body = _definition(definition)
    if replace and name in {s.name for s in crm.segments.list()}:
        crm.segments.update(name, body)
    else:
        crm.segments.create(name, body, description=description)
    click.echo(f"segment {name}: {crm.segments.count(name)} contacts")


@segment.command("list")
@format_option
def segment_list(fmt: str) -> None:
    """List saved segments with their sizes.

    \b
    Example:
      crm segment list --format json
    """
    crm = get_crm()
    rows = [{"name": s.name, "contacts": crm.segments.count(s.name), "description": s.description,
             "updated_at": s.updated_at} for s in crm.segments.list()]  # fmt: skip
    emit(rows, fmt, ["name", "contacts", "description", "updated_at"])


@segment.command("show")
@click.argument("name")
@format_option
def segment_show(name: str, fmt: str) -> None:
    """Show a segment's definition and size.

    \b
    Example:
      crm segment show vip-customers
    """
    crm = get_crm()
    found = crm.segments.get(name)
    record: dict[str, Any] = {"name": found.name, "description": found.description,
                              "contacts": crm.segments.count(name), "definition": found.definition,
                              "updated_at": found.updated_at}  # fmt: skip
    if fmt == "table":
        record["definition"] = to_json(found.definition)
    emit_record(record, fmt)


@segment.command("members")
@click.argument("name")
@click.option("--limit", default=None, type=int, help="At most this many (default: all).")
@click.option("--offset", default=0, show_default=True)
@format_option
def segment_members(name: str, limit: int | None, offset: int, fmt: str) -> None:
    """List the contacts in a segment (saved, or one a plugin answers for).

    \b
    Example:
      crm segment members vip-customers --format csv > vips.csv
    """
    rows = get_crm().segments.members(name, limit=limit, offset=offset)
    emit([{c: getattr(r, c) for c in LIST_COLUMNS} for r in rows], fmt, LIST_COLUMNS)


@segment.command("delete")
@click.argument("name")
def segment_delete(name: str) -> None:
    """Delete a saved segment (its contacts stay).

    \b
    Example:
      crm segment delete clicked-spring
    """
    get_crm().segments.delete(name)
    click.echo(f"segment {name} deleted")


COMMANDS = [segment]

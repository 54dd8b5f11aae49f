"""Lead capture on the command line: tracked links, web forms, affiliates, ad-platform imports."""

from __future__ import annotations

from typing import Any

import click

from crmcore.cli import get_crm
from crmcore.cli.output import emit, emit_record, format_option

LINK_COLUMNS = ["code", "short_url", "url", "campaign", "ad", "affiliate", "clicks"]


@click.group()
def link() -> None:
    """Tracked links: short links that record a click (with campaign, ad, affiliate) and redirect."""


@link.command("create")
@click.option("--url", required=True, help="Where the link goes (absolute http/https URL).")
@click.option("--code", help="The short code (default: 8 random characters).")
@click.option("--campaign", help="Campaign credited with the clicks.")
@click.option("--ad", help="Ad credited with the clicks.")
@click.option("--affiliate", help="Affiliate credited with the clicks (its code).")
@click.option("--source", help="Where the link is published (google, newsletter, blog).")
@click.option("--medium", help="Medium (cpc, email, social).")
@format_option
def link_create(fmt: str, **options: Any) -> None:
    """Create a short link; print its short URL.

    \b
    Example:
      crm link create --url https://shop.example.com/spring --campaign spring --ad banner-1
    """
    crm = get_crm()
    created = crm.links.create(options.pop("url"), **options)
    emit_record({"id": created.id, "code": created.code, "short_url": crm.links.short_url(created.code),
                 "url": created.url}, fmt)  # fmt: skip


@link.command("list")
@format_option
def link_list(fmt: str) -> None:
    """List short links with their click counts.

    \b
    Example:
      crm link list --format json
    """
    emit(get_crm().links.list(), fmt, LINK_COLUMNS)


COMMANDS = [link]

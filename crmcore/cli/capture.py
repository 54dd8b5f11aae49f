"""Lead capture on the command line: tracked links, web forms, affiliates, ad-platform imports."""

from __future__ import annotations

from typing import Any

import click

from crmcore.cli import get_crm
from crmcore.cli.contacts import touch
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


def parse_field(text: str) -> dict[str, Any]:
    """``NAME[:TYPE][!][=TARGET]``: ``email:email!``, ``message:textarea``, ``budget:select=custom.budget``.

    ``!`` makes the field required; ``=TARGET`` maps it (default: the contact
    field of the same name, if there is one). Choices of a select follow
    ``|``: ``size:select|1-10|11-50``.
    """
    from crmcore.errors import ValidationError

    spec: dict[str, Any] = {}
    head, _, choices = text.partition("|")
    head, sep, target = head.partition("=")
    if sep:
        spec["maps_to"] = target.strip() or None
    if head.endswith("!"):
        spec["required"], head = True, head[:-1]
    name, _, kind = head.partition(":")
    if not name.strip():
        raise ValidationError({"field": f"{text!r} has no name"})
    spec["name"] = name.strip()
    if kind:
        spec["type"] = kind.strip()
    if choices:
        spec["choices"] = [c.strip() for c in choices.split("|") if c.strip()]
    return spec


@click.group()
def form() -> None:
    """Web forms (web-to-lead): define them as data; the web app serves them at /forms/<slug>."""


@form.command("create")
@click.argument("slug")
@click.option("--title", required=True, help="Heading of the form.")
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="SPEC",
    help="NAME[:TYPE][!][=TARGET][|CHOICE|...], repeatable; ! = required.",
)
@click.option(
    "--from-json",
    "from_json",
    type=click.File("r", encoding="utf-8"),
    help="Read the field list (JSON array of {name, label, type, required, maps_to, choices}).",
)
@click.option("--consent-text", help="Text of the consent checkbox (no box without it).")
@click.option("--purpose", "purposes", multiple=True, help="Consent purpose the box grants (default: marketing).")
@click.option("--require-consent", is_flag=True, help="Refuse submissions without the box ticked.")
@click.option("--thank-you-url", help="Where browsers go after submitting (default: a thank-you page).")
@click.option("--thank-you-message", help="Text of the built-in thank-you page.")
@click.option("--origin", "origins", multiple=True, help="Origin allowed to post (https://www.example.com).")
@click.option("--campaign", help="Campaign credited with every submission.")
@click.option("--tag", "tags", multiple=True, help="Tag put on every captured lead.")
@format_option
def form_create(slug: str, fields: tuple[str, ...], from_json: Any, fmt: str, **options: Any) -> None:
    """Define a web form.

    \b
    Example:
      crm form create demo --title "Book a demo" --field "email:email!" --field first_name \\
        --field "message:textarea" --consent-text "Send me product news" --origin https://www.example.com
    """
    import json

    from crmcore.errors import ValidationError

    specs: list[dict[str, Any]] = [parse_field(text) for text in fields]
    if from_json is not None:
        try:
            loaded = json.load(from_json)
        except ValueError as exc:
            raise ValidationError({"from_json": f"not valid JSON: {exc}"}) from None
        specs.extend(loaded if isinstance(loaded, list) else [loaded])
    crm = get_crm()
    created = crm.forms.create(
        slug, title=options["title"], fields=specs, consent_text=options["consent_text"],
        consent_purposes=options["purposes"] or ("marketing",), consent_required=options["require_consent"],
        thank_you_url=options["thank_you_url"], thank_you_message=options["thank_you_message"],
        allowed_origins=options["origins"], campaign=options["campaign"], tags=options["tags"],
    )  # fmt: skip
    emit_record({"id": created.id, "slug": created.slug, "url": _form_url(crm, created.slug)}, fmt)


def _form_url(crm: Any, slug: str) -> str:
    return f"{crm.settings.base_url.rstrip('/')}/forms/{slug}"


@form.command("list")
@format_option
def form_list(fmt: str) -> None:
    """List web forms.

    \b
    Example:
      crm form list --format json
    """
    crm = get_crm()
    rows = [{"slug": f.slug, "title": f.title, "fields": len(f.fields), "version": f.version,
             "url": _form_url(crm, f.slug)} for f in crm.forms.list()]  # fmt: skip
    emit(rows, fmt, ["slug", "title", "fields", "version", "url"])


@form.command("show")
@click.argument("slug")
@format_option
def form_show(slug: str, fmt: str) -> None:
    """Show a form's definition and the snippet that embeds it in a page.

    \b
    Example:
      crm form show demo --format json
    """
    crm = get_crm()
    found = crm.forms.get(slug)
    url = _form_url(crm, slug)
    record = {
        "slug": found.slug, "title": found.title, "version": found.version, "url": url,
        "consent_text": found.consent_text, "consent_purposes": found.consent_purposes,
        "consent_required": found.consent_required, "thank_you_url": found.thank_you_url,
        "allowed_origins": found.allowed_origins, "campaign": found.campaign, "tags": found.tags,
        "embed": f'<iframe src="{url}" title="{found.title}" style="border:0;width:100%;min-height:32rem"></iframe>',
    }  # fmt: skip
    if fmt == "json":
        from crmcore.cli.output import to_json

        click.echo(to_json({**record, "fields": found.fields}))
        return
    emit_record(record, fmt)
    if fmt == "table":
        click.echo("\nfields:")
        emit(found.fields, fmt, ["name", "label", "type", "required", "maps_to"])


@click.group()
def affiliate() -> None:
    """Affiliates: partner sites credited with clicks and conversions, paid a commission."""


@affiliate.command("add")
@click.argument("code")
@click.option("--name", required=True, help="The partner's name.")
@click.option("--percent", "commission_percent", help="Commission: percent of the conversion value.")
@click.option("--flat", "commission_flat", help="Commission: flat amount per conversion.")
@click.option("--currency", help="Currency of the flat amount (default: the CRM's).")
@click.option("--postback-url", help="Server-to-server postback; placeholders {click_id} {subid} {value} "
              "{commission} {currency} {conversion_id} {order_id}.")  # fmt: skip
@format_option
def affiliate_add(code: str, fmt: str, **options: Any) -> None:
    """Add an affiliate; CODE is what its links and touchpoints carry as affiliate.

    \b
    Example:
      crm affiliate add blog-42 --name "Gadget Blog" --percent 10 \\
        --postback-url "https://track.example.net/pb?sub={subid}&amount={commission}"
    """
    created = get_crm().affiliates.add(code, **options)
    emit_record({"id": created.id, "code": created.code, "name": created.name}, fmt)


@affiliate.command("list")
@format_option
def affiliate_list(fmt: str) -> None:
    """List affiliates with their conversions and commission earned.

    \b
    Example:
      crm affiliate list --format csv
    """
    crm = get_crm()
    rows = crm.affiliates.summary()
    emit(rows, fmt, ["code", "name", "commission_percent", "commission_flat", "currency", "conversions",
                     "commission", "postback_url"])  # fmt: skip


@touch.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--source", required=True, help="The ad platform (google, meta, bing).")
@click.option("--currency", help="Currency of the spend when the file has no currency column.")
@format_option
def touch_import(file: Any, source: str, currency: str | None, fmt: str) -> None:
    """Import impressions, clicks and spend per day, campaign and ad from an ad platform's CSV.

    Importing the same file again updates the same rows. One bad row refuses
    the whole file and names every bad row.

    \b
    Example:
      crm touch import google-ads-2026-01.csv --source google --currency EUR
    """
    from crmcore.adimport import import_ad_spend

    result = import_ad_spend(get_crm(), file.read(), source=source, currency=currency)
    emit_record({"rows": result.rows, "created": result.created, "updated": result.updated}, fmt)


COMMANDS = [link, form, affiliate]

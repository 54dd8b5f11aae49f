"""Contacts, leads, touchpoints and interactions on the command line."""

from __future__ import annotations

from typing import Any

import click

from crmcore.cli import get_crm
from crmcore.cli.output import emit, emit_record, format_option, to_json
from crmcore.errors import ValidationError

LIST_COLUMNS = ["id", "email", "first_name", "last_name", "stage", "score", "owner_id", "created_at"]


def _contact_options(func: Any) -> Any:
    for name, help_text in reversed([
        ("--email", "Email address."), ("--phone", "Phone number (any format; stored as E.164)."),
        ("--first-name", "First name."), ("--last-name", "Last name."), ("--title", "Job title."),
        ("--organization", "Organization name (created if new)."), ("--owner", "Owning rep (id or email)."),
        ("--country", "ISO country code (DE, US, …)."), ("--city", "City."), ("--source", "Where they came from."),
        ("--language", "Preferred language (en, fa, …)."), ("--timezone", "IANA time zone (Europe/Berlin)."),
    ]):  # fmt: skip
        func = click.option(name, default=None, help=help_text)(func)
    func = click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")(func)
    func = click.option("--custom", "custom", multiple=True, metavar="NAME=VALUE",
                        help="A custom field value (repeatable).")(func)  # fmt: skip
    return func


def _fields(options: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in options.items() if v not in (None, (), "") and k not in ("tags", "custom")}
    if options.get("tags"):
        fields["tags"] = list(options["tags"])
    if options.get("custom"):
        custom = {}
        for pair in options["custom"]:
            name, sep, value = pair.partition("=")
            if not sep:
                raise ValidationError({"custom": f"{pair!r} is not NAME=VALUE"})
            custom[name.strip()] = value
        fields["custom"] = custom
    return fields


@click.group()
def contact() -> None:
    """People in the CRM: add, show, list, update, move back, merge, erase, export."""


@contact.command("add")
@_contact_options
@format_option
def contact_add(fmt: str, **options: Any) -> None:
    """Add a contact typed in by a rep (an existing email is refused).

    \b
    Example:
      crm contact add --email ada@example.com --first-name Ada --organization "Analytical Engines"
    """
    created = get_crm().contacts.add(**_fields(options))
    emit_record({"id": created.id, "email": created.email, "stage": created.stage, "owner_id": created.owner_id}, fmt)


@contact.command("show")
@click.argument("ref")
@click.option("--score", is_flag=True, help="List each score contribution with its reason.")
@click.option("--timeline", is_flag=True, help="Show the contact's history, newest first.")
@click.option("--limit", default=50, show_default=True, help="Timeline page size.")
@format_option
def contact_show(ref: str, score: bool, timeline: bool, limit: int, fmt: str) -> None:
    """Show a contact by id or email.

    \b
    Examples:
      crm contact show ada@example.com
      crm contact show 42 --score --timeline --format json
    """
    crm = get_crm()
    record = crm.contacts.details(ref)
    if score:
        total, contributions = crm.leads.score(ref)
        record["score_now"] = total
        record["score_reasons"] = [{"points": c.points, "reason": c.reason, "source": c.source} for c in contributions]
    if timeline:
        record["timeline"] = crm.contacts.timeline(ref, limit=limit)
    if fmt == "json":
        click.echo(to_json(record))
        return
    flat = {k: v for k, v in record.items() if k not in ("score_reasons", "timeline")}
    emit_record(flat, fmt)
    if fmt == "table" and score:
        click.echo("\nscore contributions:")
        emit(record["score_reasons"], fmt, ["points", "reason", "source"])
    if fmt == "table" and timeline:
        click.echo("\ntimeline:")
        emit(record["timeline"], fmt, ["at", "kind", "text", "source"])


@contact.command("list")
@click.option("--stage", help="Only this lifecycle stage.")
@click.option("--owner", help="Only contacts owned by this rep (id or email).")
@click.option("--tag", help="Only contacts with this tag.")
@click.option("--search", help="Match email or name.")
@click.option("--limit", default=50, show_default=True)
@click.option("--offset", default=0)
@format_option
def contact_list(fmt: str, **filters: Any) -> None:
    """List contacts, newest first.

    \b
    Example:
      crm contact list --stage prospect --format csv
    """
    rows = get_crm().contacts.list(**filters)
    emit([{c: getattr(r, c) for c in LIST_COLUMNS} for r in rows], fmt, LIST_COLUMNS)


@contact.command("update")
@click.argument("ref")
@_contact_options
@format_option
def contact_update(ref: str, fmt: str, **options: Any) -> None:
    """Change fields of a contact.

    \b
    Example:
      crm contact update ada@example.com --phone "+44 20 7946 0958" --tag vip
    """
    updated = get_crm().contacts.update(ref, **_fields(options))
    emit_record({"id": updated.id, "email": updated.email, "stage": updated.stage}, fmt)


@contact.command("stage")
@click.argument("ref")
@click.argument("stage", type=click.Choice(["lead", "customer", "dormant", "former"]))
@click.option("--reason", required=True, help="Why the contact moves back.")
def contact_stage(ref: str, stage: str, reason: str) -> None:
    """Move a contact back (customer to dormant or former, prospect to lead).

    \b
    Example:
      crm contact stage ada@example.com former --reason "closed the company"
    """
    moved = get_crm().contacts.move_stage(ref, stage, reason=reason)
    click.echo(f"contact {moved.id} is now {moved.stage}")


@contact.command("merge")
@click.argument("survivor")
@click.argument("duplicate")
def contact_merge(survivor: str, duplicate: str) -> None:
    """Merge DUPLICATE into SURVIVOR: touchpoints, purchases, opportunities move over.

    \b
    Example:
      crm contact merge 12 31
    """
    kept = get_crm().contacts.merge(survivor, duplicate)
    click.echo(f"merged {duplicate} into contact {kept.id}")


@contact.command("erase")
@click.argument("ref")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def contact_erase(ref: str, yes: bool) -> None:
    """Erase a person's personal data everywhere (aggregates are kept).

    \b
    Example:
      crm contact erase ada@example.com --yes
    """
    crm = get_crm()
    target = crm.contacts.get(ref)
    if not yes:
        click.confirm(f"Erase contact {target.id} ({target.email or 'no email'})?", abort=True)
    crm.contacts.erase(target.id)
    click.echo(f"contact {target.id} erased")


@contact.command("dormant")
@click.option(
    "--for", "period", help="Idle for at least this long: 90d, 6w, 18m, 3y (default: the dormant_after_days setting)."
)
@click.option("--limit", default=None, type=int, help="At most this many (default: all).")
@format_option
def contact_dormant(period: str | None, limit: int | None, fmt: str) -> None:
    """List customers with no purchase, touchpoint or interaction for the period, longest idle first.

    \b
    Examples:
      crm contact dormant
      crm contact dormant --for 2y --format csv > idle.csv
    """
    rows = get_crm().contacts.dormant(period=period, limit=limit)
    columns = ["id", "email", "first_name", "last_name", "stage", "last_activity_at", "owner_id"]
    emit([{c: getattr(r, c) for c in columns} for r in rows], fmt, columns)


@contact.command("purge")
@click.option("--dormant-for", "period", required=True, help="Erase customers idle this long: 3y, 36m, ...")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def contact_purge(period: str, yes: bool) -> None:
    """Erase every customer dormant for the period (personal data everywhere; aggregates kept).

    \b
    Example:
      crm contact purge --dormant-for 3y --yes
    """
    from crmcore.services.contacts import parse_period

    crm = get_crm()
    parse_period(period, "dormant-for")
    found = crm.contacts.dormant(period=period)
    if not found:
        click.echo(f"no contacts dormant for {period}")
        return
    if not yes:
        click.confirm(f"Erase {len(found)} contacts dormant for {period}? This cannot be undone", abort=True)
    result = crm.contacts.purge_dormant(period)
    click.echo(f"erased {len(result.erased)} contacts")
    for contact_id, reason in result.refused.items():
        click.echo(f"contact {contact_id} kept: {reason}", err=True)


@contact.command("export")
@click.argument("ref", required=False)
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-", help="File (default: stdout).")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
def contact_export(ref: str | None, output: Any, fmt: str) -> None:
    """Export one person (everything held on them, JSON) or all contacts (CSV or JSON).

    \b
    Examples:
      crm contact export ada@example.com > ada.json
      crm contact export --format csv -o contacts.csv
    """
    crm = get_crm()
    if ref is not None:
        output.write(to_json(crm.contacts.export_person(ref)) + "\n")
        return
    crm.contacts.export_all(output, fmt)


@contact.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="COLUMN=FIELD",
    help="Map a column to a field (repeatable); COLUMN= ignores a column.",
)
@click.option("--dry-run", is_flag=True, help="Validate and match every row; write nothing.")
@click.option("--errors", "errors_path", type=click.Path(dir_okay=False), help="Write refused rows here (CSV).")
@click.option("--encoding", help="The file's encoding when it is not UTF-8 (cp1252, latin-1, ...).")
@click.option("--delimiter", help="Field delimiter (default: sniffed from the header: , ; tab |).")
@click.option(
    "--existing",
    type=click.Choice(["update", "skip"]),
    default="update",
    show_default=True,
    help="What to do with rows matching an existing contact.",
)
@click.option("--source", help="Source of the new contacts (default: import).")
@click.option("--batch-size", default=2000, show_default=True, help="Rows per transaction.")
@format_option
def contact_import(file: str, maps: tuple[str, ...], dry_run: bool, errors_path: str | None, fmt: str,
                   **options: Any) -> None:  # fmt: skip
    """Import contacts from a CSV file: streamed, re-runnable, bad rows reported by line.

    Columns named like a field (email, phone, first_name, ..., custom.<name>)
    map themselves; --map names the others. A row matching an existing contact
    (same email, else same phone) updates it: importing a file twice creates
    nobody twice.

    \b
    Examples:
      crm contact import people.csv --map "E-Mail=email" --map "Firma=organization" --dry-run
      crm contact import people.csv --errors refused.csv
      crm contact import export-from-excel.csv --encoding cp1252
    """
    import os
    import sys

    mapping = {}
    for pair in maps:
        column, sep, field = pair.partition("=")
        if not sep:
            raise ValidationError({"map": f"{pair!r} is not COLUMN=FIELD"})
        mapping[column.strip()] = field.strip()
    crm = get_crm()
    size = os.path.getsize(file)
    if sys.stderr.isatty() and size:
        with click.progressbar(length=size, label="importing", file=sys.stderr) as bar:
            result = crm.contacts.import_csv(file, mapping=mapping, dry_run=dry_run, errors_to=errors_path,
                                             progress=bar.update, **options)  # fmt: skip
    else:
        result = crm.contacts.import_csv(file, mapping=mapping, dry_run=dry_run, errors_to=errors_path, **options)
    if fmt == "json":
        click.echo(to_json(result.as_dict()))
    else:
        would = "would be " if dry_run else ""
        click.echo(f"{result.rows} rows: {result.created} {would}created, {result.updated} {would}updated, "
                   f"{result.unchanged} unchanged, {result.failed} refused")  # fmt: skip
        if result.ignored_columns:
            click.echo(f"ignored columns (no field): {', '.join(result.ignored_columns)}")
        for error in result.errors[:10]:
            click.echo(f"line {error.line}: {error.reason}", err=True)
        if result.failed > 10:
            click.echo(f"... and {result.failed - 10} more" + (f" (all in {errors_path})" if errors_path else ""),
                       err=True)  # fmt: skip
    if result.failed:
        sys.exit(1 if not (result.created or result.updated or result.unchanged) else 0)


@click.group()
def lead() -> None:
    """Leads: capture and qualify."""


@lead.command("capture")
@_contact_options
@click.option("--kind", default="form", show_default=True, help="Kind of the touchpoint that brought them.")
@click.option("--campaign", help="Campaign of that touchpoint.")
@click.option("--utm-source", help="utm_source of that touchpoint.")
@format_option
def lead_capture(kind: str, campaign: str | None, utm_source: str | None, fmt: str, **options: Any) -> None:
    """Capture a lead; a known email records the touchpoint on the existing contact.

    \b
    Example:
      crm lead capture --email ada@example.com --source webinar --kind form --campaign spring
    """
    touch = {"kind": kind, "campaign": campaign, "utm_source": utm_source, "source": options.get("source")}
    captured = get_crm().leads.capture(touch={k: v for k, v in touch.items() if v}, **_fields(options))
    emit_record({"id": captured.id, "email": captured.email, "stage": captured.stage,
                 "score": captured.score, "created": captured.created, "owner_id": captured.owner_id}, fmt)  # fmt: skip


@lead.command("qualify")
@click.argument("ref")
@click.option("--reason", required=True, help="Why this lead is a prospect.")
def lead_qualify(ref: str, reason: str) -> None:
    """Make a lead a prospect.

    \b
    Example:
      crm lead qualify ada@example.com --reason "budget confirmed"
    """
    qualified = get_crm().leads.qualify(ref, reason=reason)
    click.echo(f"contact {qualified.id} is now a prospect")


@click.group()
def touch() -> None:
    """Touchpoints: clicks, opens, forms, visits, calls, conversions."""


@touch.command("record")
@click.argument("ref", required=False)
@click.option(
    "--kind",
    required=True,
    help="form, ad_click, affiliate_click, email_open, email_click, visit, "
    "call, meeting, conversion, impression, link_click.",
)
@click.option("--value", help="Value of a conversion.")
@click.option("--currency", help="Currency of the value.")
@click.option("--at", "occurred_at", help="When (ISO 8601; default now).")
@click.option("--notes", help="What happened (calls, visits).")
@click.option(
    "--set",
    "extra",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Other fields: source, medium, campaign, ad, affiliate, utm_*, click_id, external_id.",
)
@format_option
def touch_record(ref: str | None, fmt: str, extra: tuple[str, ...], **options: Any) -> None:
    """Record a touchpoint for a contact (by id or email), or anonymously without one.

    \b
    Examples:
      crm touch record ada@example.com --kind call --notes "asked for a demo"
      crm touch record ada@example.com --kind conversion --value 49.90 --currency EUR
    """
    fields = {k: v for k, v in options.items() if v is not None}
    for pair in extra:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValidationError({"set": f"{pair!r} is not FIELD=VALUE"})
        fields[name.strip()] = value
    recorded = get_crm().touchpoints.record(ref, **fields)
    emit_record({"id": recorded.id, "contact_id": recorded.contact_id, "kind": recorded.kind,
                 "occurred_at": recorded.occurred_at}, fmt)  # fmt: skip


@click.group()
def interaction() -> None:
    """Calls, meetings, emails and notes reps log."""


@interaction.command("log")
@click.argument("ref")
@click.option("--kind", required=True, type=click.Choice(["call", "meeting", "email", "note", "visit", "chat"]))
@click.option("--subject")
@click.option("--body")
@click.option("--direction", type=click.Choice(["in", "out"]))
@click.option("--minutes", "duration_minutes", type=int, help="Duration.")
@click.option("--outcome")
@click.option("--as", "actor", help="The rep logging it (email); default: the system.")
def interaction_log(ref: str, actor: str | None, **options: Any) -> None:
    """Log an interaction with a contact.

    \b
    Example:
      crm interaction log ada@example.com --kind call --subject "Pricing" --minutes 15 --as rep@example.com
    """
    logged = get_crm().interactions.log(ref, actor=actor, **options)
    click.echo(f"interaction {logged.id} logged")


COMMANDS = [contact, lead, touch, interaction]

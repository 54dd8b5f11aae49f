"""``crm campaign``, ``crm template``, ``crm suppression`` and ``crm sequence``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from crmcore.cli import get_crm
from crmcore.cli.output import emit, emit_record, format_option
from crmcore.errors import ValidationError

CAMPAIGN_COLUMNS = ["id", "name", "state", "segment", "template", "budget", "cost", "currency", "send_at"]


def _em() -> Any:
    from crmcore_email_marketing import email_marketing

    return email_marketing(get_crm())


def campaign_record(campaign: Any) -> dict[str, Any]:
    """A campaign as plain data."""
    from crmcore_email_marketing.models import Template

    with get_crm().transaction(readonly=True) as ctx:
        template = ctx.session.get(Template, campaign.template_id)
    return {
        "id": campaign.id, "name": campaign.name, "state": campaign.state, "goal": campaign.goal,
        "channel": campaign.channel, "segment": campaign.segment, "template": template.name if template else None,
        "budget": campaign.budget, "cost": campaign.actual_cost, "currency": campaign.currency,
        "owner_id": campaign.owner_id, "send_at": campaign.send_at, "local_send_at": campaign.local_send_at,
        "ab_metric": campaign.ab_metric, "ab_winner": campaign.ab_winner, "started_at": campaign.started_at,
        "finished_at": campaign.finished_at,
    }  # fmt: skip


def _text(value: str | None, path: str | None, what: str) -> str | None:
    if path is not None:
        if value is not None:
            raise ValidationError({what: f"give --{what} or --{what}-file, not both"})
        return Path(path).read_text(encoding="utf-8")
    return value


# -- crm campaign --------------------------------------------------------------------------


@click.group()
def campaign() -> None:
    """Email campaigns: create, schedule, send, pause, resume, cancel, stats."""


@campaign.command("create")
@click.argument("name")
@click.option("--template", required=True, help="Template name or id.")
@click.option("--segment", required=True, help="The segment of contacts it goes to.")
@click.option("--goal")
@click.option("--budget", help="Planned spend, e.g. 500.00.")
@click.option("--cost", help="Actual cost so far.")
@click.option("--currency", help="ISO code (default: the CRM's).")
@click.option("--owner", help="Owning user (id or email).")
@click.option("--ab", "ab_subjects", multiple=True, metavar="LABEL=SUBJECT",
              help="A/B subject line (repeat, 2 to 5).")  # fmt: skip
@click.option("--ab-metric", type=click.Choice(["opens", "clicks"]), default="opens", show_default=True)
@click.option("--ab-sample", type=int, default=20, show_default=True, help="Percent of recipients in the test.")
@click.option("--ab-wait", type=int, default=240, show_default=True, help="Minutes before the winner is chosen.")
@format_option
def campaign_create(fmt: str, name: str, ab_subjects: tuple[str, ...], ab_metric: str, ab_sample: int,
                    ab_wait: int, **options: Any) -> None:  # fmt: skip
    """Create a draft campaign.

    \b
    Examples:
      crm campaign create "Spring sale" --template spring --segment newsletter --budget 500
      crm campaign create "Spring test" --template spring --segment newsletter \\
          --ab A="Spring is here" --ab B="20% off this week" --ab-metric clicks
    """
    em = _em()
    created = em.campaigns.create(name, **options)
    if ab_subjects:
        subjects: dict[str, str] = {}
        for item in ab_subjects:
            label, sep, subject = item.partition("=")
            if not sep:
                raise ValidationError({"ab": f"{item!r} is not LABEL=SUBJECT"})
            subjects[label.strip()] = subject
        created = em.campaigns.ab_test(created.id, subjects, metric=ab_metric, sample_percent=ab_sample,
                                       wait_minutes=ab_wait)  # fmt: skip
    emit_record(campaign_record(created), fmt)


@campaign.command("list")
@click.option("--state", help="draft, scheduled, sending, paused, done or cancelled.")
@format_option
def campaign_list(fmt: str, state: str | None) -> None:
    """List campaigns, newest first.

    \b
    Example:
      crm campaign list --state sending
    """
    emit([campaign_record(c) for c in _em().campaigns.list(state=state)], fmt, CAMPAIGN_COLUMNS)


@campaign.command("show")
@click.argument("ref")
@format_option
def campaign_show(fmt: str, ref: str) -> None:
    """Show one campaign (name or id).

    \b
    Example:
      crm campaign show "Spring sale"
    """
    emit_record(campaign_record(_em().campaigns.get(ref)), fmt)


@campaign.command("schedule")
@click.argument("ref")
@click.option("--at", help="When (ISO time; UTC unless it has an offset).")
@click.option("--local-time", help="A wall time (YYYY-MM-DDTHH:MM) in each recipient's own time zone.")
@format_option
def campaign_schedule(fmt: str, ref: str, at: str | None, local_time: str | None) -> None:
    """Schedule sending; the template and segment are checked now.

    \b
    Examples:
      crm campaign schedule "Spring sale" --at 2026-03-01T08:00:00+01:00
      crm campaign schedule "Spring sale" --local-time 2026-03-01T09:00
    """
    emit_record(campaign_record(_em().campaigns.schedule(ref, at=at, local_time=local_time)), fmt)


def _state_command(name: str, doc: str) -> click.Command:
    @click.argument("ref")
    @format_option
    def command(fmt: str, ref: str) -> None:
        done = getattr(_em().campaigns, name)(ref)
        emit_record(campaign_record(done), fmt)

    command.__doc__ = doc
    return campaign.command(name)(command)


_state_command("send", """Start sending now (the worker delivers).

    \b
    Example:
      crm campaign send "Spring sale"
    """)  # fmt: skip
_state_command("pause", """Pause sending after the message in hand.

    \b
    Example:
      crm campaign pause "Spring sale"
    """)  # fmt: skip
_state_command("resume", """Resume a paused campaign; nobody gets a message twice.

    \b
    Example:
      crm campaign resume "Spring sale"
    """)  # fmt: skip
_state_command("cancel", """Cancel a campaign: nothing more is sent.

    \b
    Example:
      crm campaign cancel "Spring sale"
    """)  # fmt: skip


@campaign.command("stats")
@click.argument("ref")
@click.option("--skipped", is_flag=True, help="List the recipients not sent, with the reasons.")
@format_option
def campaign_stats(fmt: str, ref: str, skipped: bool) -> None:
    """Sent, delivered, bounced, opens, clicks, unsubscribes, conversions, revenue, cost, ROI.

    \b
    Examples:
      crm campaign stats "Spring sale"
      crm campaign stats "Spring sale" --skipped --format csv
    """
    em = _em()
    if skipped:
        emit(em.campaigns.skipped(ref, limit=100_000), fmt, ["contact_id", "email", "status", "reason"])
        return
    stats = em.campaigns.stats(ref)
    statuses = stats.pop("statuses")
    stats.update({f"status.{k}": v for k, v in statuses.items()})
    emit_record(stats, fmt)


# -- crm template --------------------------------------------------------------------------


@click.group()
def template() -> None:
    """Email templates (Jinja2, sandboxed): create, update, list, preview."""


@template.command("create")
@click.argument("name")
@click.option("--subject", required=True)
@click.option("--html", help="The HTML body (a Jinja2 template).")
@click.option("--html-file", type=click.Path(exists=True, dir_okay=False))
@click.option("--text", help="The text part (generated from the HTML when not given).")
@click.option("--text-file", type=click.Path(exists=True, dir_okay=False))
@click.option("--layout", default="email/layout.html", show_default=True)
@format_option
def template_create(fmt: str, name: str, subject: str, html: str | None, html_file: str | None,
                    text: str | None, text_file: str | None, layout: str) -> None:  # fmt: skip
    """Save a template; an error names the part and line.

    \b
    Example:
      crm template create spring --subject "Hello {{ contact.first_name or 'there' }}" --html-file spring.html
    """
    body = _text(html, html_file, "html")
    created = _em().templates.create(name, subject=subject, html=body or "", text=_text(text, text_file, "text"),
                                     layout=layout)  # fmt: skip
    emit_record({"id": created.id, "name": created.name, "subject": created.subject}, fmt)


@template.command("update")
@click.argument("name")
@click.option("--subject")
@click.option("--html-file", type=click.Path(exists=True, dir_okay=False))
@click.option("--text-file", type=click.Path(exists=True, dir_okay=False))
@format_option
def template_update(fmt: str, name: str, subject: str | None, html_file: str | None, text_file: str | None) -> None:
    """Change a template (refused while a campaign using it is scheduled or sending).

    \b
    Example:
      crm template update spring --html-file spring.html
    """
    changes: dict[str, Any] = {}
    if subject is not None:
        changes["subject"] = subject
    if html_file:
        changes["html"] = Path(html_file).read_text(encoding="utf-8")
    if text_file:
        changes["text"] = Path(text_file).read_text(encoding="utf-8")
    updated = _em().templates.update(name, **changes)
    emit_record({"id": updated.id, "name": updated.name, "subject": updated.subject}, fmt)


@template.command("list")
@format_option
def template_list(fmt: str) -> None:
    """List templates.

    \b
    Example:
      crm template list
    """
    rows = [{"id": t.id, "name": t.name, "subject": t.subject, "layout": t.layout, "updated_at": t.updated_at}
            for t in _em().templates.list()]  # fmt: skip
    emit(rows, fmt)


@template.command("preview")
@click.argument("name")
@click.option("--contact", help="Contact id or email (default: a sample contact).")
@click.option("--variant", help="An A/B subject label.")
@click.option("--part", type=click.Choice(["all", "subject", "html", "text"]), default="all", show_default=True)
@format_option
def template_preview(fmt: str, name: str, contact: str | None, variant: str | None, part: str) -> None:
    """Render a template for a contact, as it would be sent.

    \b
    Examples:
      crm template preview spring --contact ada@example.com
      crm template preview spring --contact 42 --part html > preview.html
    """
    rendered = _em().templates.preview(name, contact, variant=variant)
    if part != "all":
        click.echo(rendered[part])
    elif fmt == "table":
        click.echo(f"Subject: {rendered['subject']}\n\n{rendered['text']}")
    else:
        emit_record(rendered, fmt)


# -- crm suppression -----------------------------------------------------------------------


@click.group()
def suppression() -> None:
    """The suppression list: addresses never mailed again; bounce and complaint reports."""


@suppression.command("add")
@click.argument("address")
@click.option("--detail")
@format_option
def suppression_add(fmt: str, address: str, detail: str | None) -> None:
    """Suppress an address by hand.

    \b
    Example:
      crm suppression add ada@example.com --detail "asked by phone"
    """
    row = _em().suppressions.add(address, detail=detail)
    emit_record({"email": row.email, "reason": row.reason, "created_at": row.created_at}, fmt)


@suppression.command("remove")
@click.argument("address")
def suppression_remove(address: str) -> None:
    """Take an address off the list.

    \b
    Example:
      crm suppression remove ada@example.com
    """
    _em().suppressions.remove(address)
    click.echo(f"{address} removed")


@suppression.command("list")
@click.option("--limit", type=int, default=1000, show_default=True)
@format_option
def suppression_list(fmt: str, limit: int) -> None:
    """List suppressed addresses, newest first.

    \b
    Example:
      crm suppression list --format csv
    """
    rows = [{"email": s.email, "reason": s.reason, "detail": s.detail, "created_at": s.created_at}
            for s in _em().suppressions.list(limit=limit)]  # fmt: skip
    emit(rows, fmt, ["email", "reason", "detail", "created_at"])


@suppression.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@format_option
def suppression_ingest(fmt: str, files: tuple[str, ...]) -> None:
    """Read bounce (DSN) and complaint (ARF) messages saved as .eml files.

    \b
    Example:
      crm suppression ingest bounces/*.eml
    """
    rows = []
    for name in files:
        for outcome in _em().suppressions.ingest_report(Path(name).read_bytes()):
            rows.append({"file": name, "email": outcome.email, "kind": outcome.kind, "status": outcome.status,
                         "suppressed": outcome.suppressed, "recipient_id": outcome.recipient_id})  # fmt: skip
    emit(rows, fmt, ["file", "email", "kind", "status", "suppressed"])


# -- crm sequence --------------------------------------------------------------------------


@click.group()
def sequence() -> None:
    """Automation sequences (drips) started by lifecycle hooks."""


@sequence.command("create")
@click.argument("name")
@click.option("--trigger", required=True, help="The hook that enrols a contact, e.g. crm_lead_captured.")
@click.option(
    "--steps",
    "steps_json",
    required=True,
    help='JSON list: [{"delay": "0", "template": "welcome"}, {"delay": "3d", "remind": "Call"}].',
)
@click.option("--stop-on", default="converted,replied,unsubscribed", show_default=True)
@format_option
def sequence_create(fmt: str, name: str, trigger: str, steps_json: str, stop_on: str) -> None:
    """Create a sequence.

    \b
    Example:
      crm sequence create Welcome --trigger crm_lead_captured \\
          --steps '[{"delay": 0, "template": "welcome"}, {"delay": "2d", "remind": "Call the lead"}]'
    """
    try:
        steps = json.loads(steps_json)
    except json.JSONDecodeError as exc:
        raise ValidationError({"steps": f"not JSON: {exc}"}) from None
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        raise ValidationError({"steps": "a JSON list of objects"})
    created = _em().sequences.create(name, trigger=trigger, steps=steps,
                                     stop_on=[s.strip() for s in stop_on.split(",") if s.strip()])  # fmt: skip
    emit_record({"id": created.id, "name": created.name, "trigger": created.trigger, "stop_on": created.stop_on}, fmt)


@sequence.command("list")
@format_option
def sequence_list(fmt: str) -> None:
    """List sequences.

    \b
    Example:
      crm sequence list
    """
    rows = [{"id": s.id, "name": s.name, "trigger": s.trigger, "active": s.active, "stop_on": ",".join(s.stop_on)}
            for s in _em().sequences.list()]  # fmt: skip
    emit(rows, fmt)


@sequence.command("install-example")
@click.argument("which", type=click.Choice(["dormant"]))
@format_option
def sequence_install_example(fmt: str, which: str) -> None:
    """Install a shipped example: dormant (re-engage customers who became dormant).

    \b
    Example:
      crm sequence install-example dormant
    """
    created = _em().sequences.install_example(which)
    emit_record({"id": created.id, "name": created.name, "trigger": created.trigger}, fmt)


COMMANDS = [campaign, template, suppression, sequence]

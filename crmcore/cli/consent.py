"""The consent ledger on the command line: ``crm consent grant|withdraw|show``."""

from __future__ import annotations

from typing import Any

import click

from crmcore.cli import get_crm
from crmcore.cli.output import emit, format_option


def _ledger_options(func: Any) -> Any:
    func = click.option("--text", help="The wording the person agreed to.")(func)
    func = click.option("--form-version", help="Version of the form or notice.")(func)
    func = click.option("--ip", help="IP address the request came from.")(func)
    func = click.option("--source", required=True, help="Where it came from (phone call, form:signup, ...).")(func)
    func = click.argument("channel")(func)
    func = click.argument("purpose")(func)
    return click.argument("ref")(func)


@click.group()
def consent() -> None:
    """Consent per purpose (marketing, surveys, tracking, ...) and channel (email, sms, ...)."""


@consent.command("grant")
@_ledger_options
def consent_grant(ref: str, purpose: str, channel: str, source: str, ip: str | None,
                  form_version: str | None, text: str | None) -> None:  # fmt: skip
    """Record that contact REF agreed to PURPOSE on CHANNEL.

    \b
    Example:
      crm consent grant ada@example.com marketing email --source "phone call" --text "Yes to the newsletter"
    """
    row = get_crm().consent.grant(ref, purpose, channel, source=source, ip=ip, form_version=form_version, text=text)
    click.echo(f"contact {row.contact_id}: {purpose} by {channel} granted")


@consent.command("withdraw")
@_ledger_options
def consent_withdraw(ref: str, purpose: str, channel: str, source: str, ip: str | None,
                     form_version: str | None, text: str | None) -> None:  # fmt: skip
    """Record that contact REF withdrew PURPOSE on CHANNEL (the grant stays in the history).

    \b
    Example:
      crm consent withdraw ada@example.com marketing email --source "unsubscribe link"
    """
    row = get_crm().consent.withdraw(ref, purpose, channel, source=source, ip=ip, form_version=form_version,
                                     text=text)  # fmt: skip
    click.echo(f"contact {row.contact_id}: {purpose} by {channel} withdrawn")


@consent.command("show")
@click.argument("ref")
@click.option("--history", is_flag=True, help="Every ledger entry, oldest first.")
@format_option
def consent_show(ref: str, history: bool, fmt: str) -> None:
    """Show where contact REF stands per purpose and channel (or the whole history).

    \b
    Example:
      crm consent show ada@example.com --history --format json
    """
    crm = get_crm()
    if history:
        emit(crm.consent.history(ref), fmt, ["occurred_at", "purpose", "channel", "action", "source", "ip",
                                             "form_version", "actor"])  # fmt: skip
    else:
        emit(crm.consent.status(ref), fmt, ["purpose", "channel", "status", "changed_at", "source", "ip",
                                            "form_version"])  # fmt: skip


COMMANDS = [consent]

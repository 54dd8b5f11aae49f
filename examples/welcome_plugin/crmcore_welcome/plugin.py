"""Hook implementations of the welcome plugin (entry point ``welcome``)."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import func, select

from crmcore import hookimpl
from crmcore.cli import get_crm
from crmcore.models import Contact

HERE = Path(__file__).resolve().parent


@hookimpl
def crm_lead_captured(event, ctx):
    """Queue a welcome email for the new lead, in the capture's transaction."""
    from crmcore.mail import MailMessage, queue_mail
    from crmcore_welcome.models import Welcome

    contact = ctx.session.get(Contact, event.contact_id)
    if contact.email is None:
        return
    body = ctx.crm.templates.get_template("welcome/welcome.txt").render(contact=contact)
    queue_mail(ctx, MailMessage(to=contact.email, subject="Welcome!", text=body), key=f"welcome:{contact.id}")
    ctx.session.add(Welcome(contact_id=contact.id, email=contact.email, queued_at=ctx.now))


@hookimpl
def crm_contact_erased(event, ctx):
    """Forget the address of an erased contact."""
    from crmcore_welcome.models import Welcome

    for row in ctx.session.scalars(select(Welcome).where(Welcome.contact_id == event.contact_id)):
        row.email = "erased"


@hookimpl
def crm_register_commands(cli):
    """Add ``crm welcome count``."""

    @cli.group()
    def welcome():
        """The welcome plugin."""

    @welcome.command()
    def count():
        """How many welcomes were queued.

        \b
        Example:
          crm welcome count
        """
        from crmcore_welcome.models import Welcome

        with get_crm().transaction(readonly=True) as ctx:
            click.echo(ctx.session.scalar(select(func.count(Welcome.id))))


@hookimpl
def crm_register_models():
    """The plugin's table, for ``crm db upgrade`` (ordinary commands never import it)."""
    from crmcore_welcome import models

    return [models]


@hookimpl
def crm_register_migrations():
    """The plugin's Alembic branch, ``welcome``."""
    return [HERE / "migrations"]


@hookimpl
def crm_register_templates():
    """Templates under ``welcome/``."""
    return [HERE / "templates"]

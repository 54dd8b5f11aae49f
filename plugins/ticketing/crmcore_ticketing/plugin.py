"""The ticketing plugin's hook implementations (entry point ``ticketing``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_

from crmcore import hookimpl
from crmcore.plugins import PluginInfo
from crmcore.registry import JobHandler, PeriodicJob, PermissionSpec, SettingSpec
from crmcore_ticketing import hookspecs

if TYPE_CHECKING:
    from types import ModuleType

    import click
    from starlette.routing import BaseRoute

    from crmcore.bundles import BundleKind
    from crmcore.console import MenuEntry, Panel, SearchHit
    from crmcore.context import HookContext
    from crmcore.crm import CRM
    from crmcore.demo.simulation import DemoDay
    from crmcore.events import ContactErased
    from crmcore.models import Contact, User
    from crmcore.reports import Report

HERE = Path(__file__).resolve().parent
#: What erased text becomes (``crm contact erase``).
ERASED = "[erased]"
plugin_info = PluginInfo(hookspecs=(hookspecs,))


def _choice(*allowed: str) -> Any:
    def convert(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return text

    return convert


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise ValueError(f"{value!r} is not true or false")
    return text in ("1", "true", "yes", "on")


@hookimpl
def crm_register_settings() -> list[SettingSpec]:
    """Attachments, limits, tracking numbers, mail in and out."""
    return [
        SettingSpec(plugin="ticketing", name="attachment_dir", default="ticketing-attachments",
                    help="Folder where attachment files are stored (by content hash)."),
        SettingSpec(plugin="ticketing", name="max_attachment_bytes", default=10_000_000, convert=int,
                    help="Largest attachment accepted, in bytes."),
        SettingSpec(plugin="ticketing", name="max_message_bytes", default=30_000_000, convert=int,
                    help="Largest incoming email accepted, in bytes."),
        SettingSpec(plugin="ticketing", name="tracking_prefix", default="TK", convert=lambda v: str(v).strip().upper(),
                    help="Prefix of tracking numbers (TK-7F3K-9QWD)."),
        SettingSpec(plugin="ticketing", name="reply_to_closed", default="follow_up",
                    convert=_choice("follow_up", "reopen"),
                    help="What an email reply to a closed ticket does: open a follow-up, or reopen it."),
        SettingSpec(plugin="ticketing", name="support_address", default=None,
                    help="From/Reply-To of replies (default: the CRM's mail_from)."),
        SettingSpec(plugin="ticketing", name="acknowledge", default=True, convert=_bool,
                    help="Email the requester a tracking number when a ticket arrives by email or web."),
        SettingSpec(plugin="ticketing", name="maildir", default=None,
                    help="Maildir folder polled every minute by the worker (unset: no polling)."),
        SettingSpec(plugin="ticketing", name="status_link_days", default=7, convert=int,
                    help="How long a customer's status link works."),
        SettingSpec(plugin="ticketing", name="search_language", default="english",
                    help="PostgreSQL text-search configuration of the knowledge base."),
    ]  # fmt: skip


@hookimpl
def crm_demo_day(day: DemoDay) -> None:
    """People write in, agents answer (not always in time), tickets get solved."""
    from crmcore_ticketing.demo import simulate

    simulate(day)


@hookimpl
def crm_register_bundle_kinds() -> list[BundleKind]:
    """Business calendars and SLA policies, as vendors' bundles ship them."""
    from crmcore_ticketing.bundles import KINDS

    return KINDS


@hookimpl
def crm_register_models() -> list[ModuleType]:
    """The plugin's tables, imported only when migrations or a schema check need them."""
    from crmcore_ticketing import models

    return [models]


@hookimpl
def crm_register_migrations() -> list[Path]:
    """The plugin's own Alembic branch, ``ticketing``."""
    return [HERE / "migrations"]


@hookimpl
def crm_register_templates() -> list[Path]:
    """Templates under ``ticketing/``."""
    return [HERE / "templates"]


@hookimpl
def crm_register_jobs() -> list[JobHandler | PeriodicJob]:
    """The SLA timer handler and the Maildir poller."""
    from crmcore_ticketing.jobs import registrations

    return registrations()


@hookimpl
def crm_register_commands(cli: click.Group) -> None:
    """``crm ticket``, ``crm sla``, ``crm kb``, ``crm contract``."""
    from crmcore_ticketing.cli import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl
def crm_register_reports() -> list[Report]:
    """First reply and resolution times, SLA attainment, volume, backlog age, agent load."""
    from crmcore_ticketing.reports import registered_reports

    return registered_reports()


@hookimpl
def crm_register_permissions() -> list[PermissionSpec]:
    """See the ticket queue; reply, note, assign and change tickets."""
    return [
        PermissionSpec(name="ticketing.view", description="See tickets and the queue", roles=("agent", "manager")),
        PermissionSpec(name="ticketing.reply", description="Reply to, note, assign and change tickets",
                       roles=("agent", "manager")),
    ]  # fmt: skip


@hookimpl
def crm_console_routes(crm: CRM) -> list[BaseRoute]:
    """The ticket queue and the ticket page with its composer, under ``/console/tickets``."""
    from crmcore_ticketing.console import routes

    return routes(crm)


@hookimpl
def crm_console_menu(crm: CRM) -> list[MenuEntry]:
    """"Tickets" in the console's menu."""
    from crmcore_ticketing.console import menu

    return menu()


@hookimpl
def crm_contact_panels(contact: Contact, ctx: HookContext) -> list[Panel]:
    """The contact's tickets on their console page."""
    from crmcore_ticketing.console import contact_panels

    return contact_panels(contact, ctx)


@hookimpl
def crm_console_my_day(user: User, ctx: HookContext) -> list[Panel]:
    """SLA deadlines at risk on "my day"."""
    from crmcore_ticketing.console import my_day

    return my_day(user, ctx)


@hookimpl
def crm_console_search(text: str, ctx: HookContext) -> list[SearchHit]:
    """Tickets by tracking number or subject in the console's search."""
    from crmcore_ticketing.console import search

    return search(text, ctx)


@hookimpl
def crm_register_routes(crm: CRM) -> list[BaseRoute]:
    """The support form, the customer status page and public articles under ``/ticketing``."""
    from crmcore_ticketing.web import routes

    return routes(crm)


@hookimpl
def crm_contact_erased(event: ContactErased, ctx: HookContext) -> None:
    """Erase what the person's tickets say; keep the tickets (counts, SLA figures) for reports.

    Subjects and every message body of tickets they requested (agents' replies
    quote them) become ``[erased]``; their attachments go, files included once
    no other message refers to them; subject changes in the history are blanked.
    """
    from sqlalchemy import delete, func, select, update

    from crmcore_ticketing import attachments
    from crmcore_ticketing.models import Attachment, HistoryEntry, Message, Ticket

    session = ctx.session
    tickets = select(Ticket.id).where(Ticket.requester_id == event.contact_id).scalar_subquery()
    messages = select(Message.id).where(or_(Message.ticket_id.in_(tickets), Message.contact_id == event.contact_id))
    files = list(session.scalars(select(Attachment.path).where(Attachment.message_id.in_(messages)).distinct()))
    session.execute(delete(Attachment).where(Attachment.message_id.in_(messages)))
    session.execute(update(Message).where(Message.id.in_(messages)).values(body=ERASED))
    session.execute(update(Ticket).where(Ticket.requester_id == event.contact_id).values(subject=ERASED))
    session.execute(
        update(HistoryEntry)
        .where(HistoryEntry.ticket_id.in_(tickets), HistoryEntry.field == "subject")
        .values(old_value=None, new_value=None)
    )
    unused = [p for p in files if not session.scalar(select(func.count()).where(Attachment.path == p))]
    if unused:
        root = attachments.folder(ctx.crm)

        def remove_files() -> None:
            for path in unused:
                (root / path).unlink(missing_ok=True)

        ctx.on_commit(remove_files)

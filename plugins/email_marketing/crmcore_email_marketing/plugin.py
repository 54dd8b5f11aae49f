"""The email_marketing plugin's hook implementations (entry point ``email_marketing``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from crmcore import hookimpl
from crmcore.plugins import PluginInfo
from crmcore.registry import JobHandler, PeriodicJob, SettingSpec
from crmcore_email_marketing import hookspecs

if TYPE_CHECKING:
    from types import ModuleType

    import click
    from sqlalchemy import Select
    from starlette.routing import BaseRoute

    from crmcore.bundles import BundleKind
    from crmcore.console import Panel
    from crmcore.context import HookContext
    from crmcore.crm import CRM
    from crmcore.demo.simulation import DemoDay
    from crmcore.events import PurchaseRecorded, TouchpointRecorded
    from crmcore.reports import Report, ReportQuery

HERE = Path(__file__).resolve().parent
plugin_info = PluginInfo(hookspecs=(hookspecs,))

#: Hooks that can start a sequence unless the ``sequence_hooks`` setting names others.
DEFAULT_SEQUENCE_HOOKS = (
    "crm_lead_captured",
    "crm_lead_qualified",
    "crm_customer_converted",
    "crm_customer_became_dormant",
    "crm_ticket_solved",
)


def _choice(*allowed: str) -> Any:
    def convert(value: Any) -> str:
        text = str(value).strip().lower().replace("-", "_")
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


def _positive(kind: type) -> Any:
    def convert(value: Any) -> Any:
        number = kind(value)
        if number < 0:
            raise ValueError(f"{value!r} is negative")
        return number

    return convert


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    return tuple(str(v).strip() for v in value if str(v).strip())


@hookimpl
def crm_demo_day(day: DemoDay) -> None:
    """A monthly newsletter to consenting prospects and customers; opens and clicks follow."""
    from crmcore_email_marketing.demo import simulate

    simulate(day)


@hookimpl
def crm_register_bundle_kinds() -> list[BundleKind]:
    """Email templates, as vendors' bundles ship them."""
    from crmcore_email_marketing.bundles import KINDS

    return KINDS


@hookimpl
def crm_register_settings() -> list[SettingSpec]:
    """Consent regime, batching, rate limit, retries, tracking, attribution, sequences."""
    plugin = "email_marketing"
    return [
        SettingSpec(plugin=plugin, name="consent_regime", default="opt_in", convert=_choice("opt_in", "opt_out"),
                    help="opt_in: only contacts holding marketing consent for email; opt_out: everyone who "
                         "has not unsubscribed or asked not to be contacted."),
        SettingSpec(plugin=plugin, name="batch_size", default=200, convert=_positive(int),
                    help="Messages per delivery batch (one outbox job, one SMTP connection)."),
        SettingSpec(plugin=plugin, name="commit_every", default=50, convert=_positive(int),
                    help="Delivery marks this many messages 'sending' per commit and records their outcomes with "
                         "the next: a crashed worker leaves at most this many 'unknown' (never resent), and a "
                         "pause takes effect after them (with a rate limit, after about a second's worth)."),
        SettingSpec(plugin=plugin, name="fill_chunk", default=1000, convert=_positive(int),
                    help="Recipients rendered and queued per fill job."),
        SettingSpec(plugin=plugin, name="rate_limit", default=0.0, convert=_positive(float),
                    help="Most messages per second over all workers (0: no limit)."),
        SettingSpec(plugin=plugin, name="max_attempts", default=5, convert=_positive(int),
                    help="Temporary refusals (4xx) of one recipient before it is recorded as failed."),
        SettingSpec(plugin=plugin, name="retry_minutes", default=10.0, convert=_positive(float),
                    help="First retry delay after a temporary refusal; doubles each time."),
        SettingSpec(plugin=plugin, name="from_address", default=None,
                    help="From of campaign messages (default: the CRM's mail_from)."),
        SettingSpec(plugin=plugin, name="reply_to", default=None, help="Reply-To of campaign messages."),
        SettingSpec(plugin=plugin, name="sender_address", default="",
                    help="The postal address shown in every message's footer (the law asks for it in places)."),
        SettingSpec(plugin=plugin, name="track_opens", default=True, convert=_bool,
                    help="Put an open pixel in campaign messages."),
        SettingSpec(plugin=plugin, name="track_clicks", default=True, convert=_bool,
                    help="Rewrite links through the signed redirect that records clicks."),
        SettingSpec(plugin=plugin, name="attribution_days", default=30, convert=_positive(int),
                    help="A purchase counts for the campaign whose message the buyer last opened or "
                         "clicked within this many days."),
        SettingSpec(plugin=plugin, name="sequence_hooks", default=DEFAULT_SEQUENCE_HOOKS, convert=_names,
                    help="Hooks that may start a sequence (any hook a plugin publishes whose event "
                         "carries a contact_id)."),
    ]  # fmt: skip


@hookimpl
def crm_register_models() -> list[ModuleType]:
    """The plugin's tables, imported only when migrations or a schema check need them."""
    from crmcore_email_marketing import models

    return [models]


@hookimpl
def crm_register_migrations() -> list[Path]:
    """The plugin's own Alembic branch, ``email_marketing``."""
    return [HERE / "migrations"]


@hookimpl
def crm_register_templates() -> list[Path]:
    """Templates under ``email_marketing/``."""
    return [HERE / "templates"]


@hookimpl
def crm_register_jobs() -> list[JobHandler | PeriodicJob]:
    """Campaign start, fill, delivery, A/B decision; sequence steps."""
    from crmcore_email_marketing.automation import registrations as automation_jobs
    from crmcore_email_marketing.sending import registrations as sending_jobs

    return [*sending_jobs(), *automation_jobs()]


@hookimpl
def crm_register_commands(cli: click.Group) -> None:
    """``crm campaign``, ``crm template``, ``crm suppression``, ``crm sequence``."""
    from crmcore_email_marketing.cli import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


@hookimpl
def crm_register_routes(crm: CRM) -> list[BaseRoute]:
    """Unsubscribe (page and one-click POST) and the open pixel under ``/email``."""
    from crmcore_email_marketing.web import routes

    return routes(crm)


@hookimpl
def crm_register_reports() -> list[Report]:
    """Campaign, link and A/B variant numbers."""
    from crmcore_email_marketing.reports import registered_reports

    return registered_reports()


@hookimpl
def crm_console_campaigns(ctx: HookContext) -> list[Panel]:
    """The email campaigns, with budgets, cost, results and ROI, on the console's campaigns page."""
    from crmcore_email_marketing.console import campaigns_panels

    return campaigns_panels(ctx)


@hookimpl
def crm_campaign_cost_contributions(query: ReportQuery, ctx: HookContext) -> list[Select[Any]]:
    """Each campaign's actual cost, on the day it started sending, charged to source ``email``."""
    from crmcore_email_marketing.reports import cost_contribution

    return [cost_contribution(query)]


@hookimpl
def crm_startup(crm: CRM) -> None:
    """Listen to the hooks that start sequences."""
    from crmcore_email_marketing.triggers import install_triggers

    install_triggers(crm)


@hookimpl
def crm_touchpoint_recorded(event: TouchpointRecorded, ctx: HookContext) -> None:
    """Count a click on a campaign link (recorded by the signed redirect) for its recipient."""
    from crmcore_email_marketing.tracking import on_touchpoint

    on_touchpoint(ctx, event)


@hookimpl
def crm_purchase_recorded(event: PurchaseRecorded, ctx: HookContext) -> None:
    """Credit the purchase to the campaign that last touched the buyer within the window."""
    from crmcore_email_marketing.tracking import attribute_purchase

    attribute_purchase(ctx, event)

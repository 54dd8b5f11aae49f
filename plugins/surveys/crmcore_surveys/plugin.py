"""The surveys plugin's hook implementations (entry point ``surveys``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from crmcore import hookimpl
from crmcore.plugins import PluginInfo
from crmcore.registry import JobHandler, PeriodicJob, PermissionSpec, SettingSpec
from crmcore_surveys import hookspecs

if TYPE_CHECKING:
    from types import ModuleType

    import click
    from starlette.routing import BaseRoute

    from crmcore.bundles import BundleKind
    from crmcore.console import Panel
    from crmcore.context import HookContext
    from crmcore.crm import CRM
    from crmcore.demo.simulation import DemoDay
    from crmcore.events import ContactErased, ContactMerged, ScoreContribution
    from crmcore.models import Contact
    from crmcore.reports import Report
    from crmcore_surveys.events import SurveyResponseRecorded

HERE = Path(__file__).resolve().parent
plugin_info = PluginInfo(hookspecs=(hookspecs,))


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise ValueError(f"{value!r} is not true or false")
    return text in ("1", "true", "yes", "on")


def _choice(*allowed: str) -> Any:
    def convert(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return text

    return convert


@hookimpl
def crm_register_bundle_kinds() -> list[BundleKind]:
    """Survey definitions, as vendors' bundles ship them (created and activated)."""
    from crmcore_surveys.bundles import KINDS

    return KINDS


@hookimpl
def crm_register_settings() -> list[SettingSpec]:
    """Quiet period, consent, extra trigger hooks, the detractor and promoter rules, scoring."""
    return [
        SettingSpec(plugin="surveys", name="quiet_days", default=30, convert=int,
                    help="No contact gets a second survey invitation within this many days (0: no limit)."),
        SettingSpec(plugin="surveys", name="require_consent", default=True, convert=_bool,
                    help="Invite only contacts holding consent for purpose 'surveys' on channel 'email'."),
        SettingSpec(plugin="surveys", name="trigger_hooks", default="",
                    help="More hooks (comma separated) a survey may be triggered by, besides the built-in ones."),
        SettingSpec(plugin="surveys", name="sender", default=None,
                    help="From address of invitations (default: the CRM's mail_from)."),
        SettingSpec(plugin="surveys", name="detractor_action", default="auto",
                    convert=_choice("auto", "ticket", "alert", "none"),
                    help="What a detractor's response does: open a ticket (ticketing), alert the owner, or "
                         "nothing; auto opens a ticket when ticketing is enabled, else alerts."),
        SettingSpec(plugin="surveys", name="alert_address", default=None,
                    help="Who gets detractor alerts for contacts without an owner (default: mail_from)."),
        SettingSpec(plugin="surveys", name="referral_url", default=None,
                    help="Refer-a-friend page promoters are invited to ({contact_id} is replaced); unset: off."),
        SettingSpec(plugin="surveys", name="score_promoter", default=10, convert=int,
                    help="Lead-score points of a contact whose latest headline answer is a promoter's."),
        SettingSpec(plugin="surveys", name="score_detractor", default=-10, convert=int,
                    help="Lead-score points of a contact whose latest headline answer is a detractor's."),
    ]  # fmt: skip


@hookimpl
def crm_register_models() -> list[ModuleType]:
    """The plugin's tables, imported only when migrations or a schema check need them."""
    from crmcore_surveys import models

    return [models]


@hookimpl
def crm_register_migrations() -> list[Path]:
    """The plugin's own Alembic branch, ``surveys``."""
    return [HERE / "migrations"]


@hookimpl
def crm_register_templates() -> list[Path]:
    """Templates under ``surveys/``."""
    return [HERE / "templates"]


@hookimpl
def crm_startup(crm: CRM) -> None:
    """Listen to the hooks surveys may be triggered by."""
    from crmcore_surveys.triggers import register

    register(crm)


@hookimpl
def crm_register_jobs() -> list[JobHandler | PeriodicJob]:
    """``surveys.send_invitation``."""
    from crmcore_surveys.jobs import registrations

    return registrations()


@hookimpl
def crm_register_commands(cli: click.Group) -> None:
    """``crm survey``."""
    from crmcore_surveys.cli import survey

    cli.add_command(survey)


@hookimpl
def crm_register_routes(crm: CRM) -> list[BaseRoute]:
    """The answer pages under ``/surveys``."""
    from crmcore_surveys.web import routes

    return routes(crm)


@hookimpl
def crm_register_permissions() -> list[PermissionSpec]:
    """See a contact's survey answers (the console's panel)."""
    return [PermissionSpec(name="surveys.view", description="See survey answers",
                           roles=("rep", "agent", "marketer", "manager"))]  # fmt: skip


@hookimpl
def crm_contact_panels(contact: Contact, ctx: HookContext) -> list[Panel]:
    """The contact's latest survey answers on their console page."""
    from crmcore_surveys.console import contact_panels

    return contact_panels(contact, ctx)


@hookimpl
def crm_register_reports() -> list[Report]:
    """Survey results, score distributions and verbatims."""
    from crmcore_surveys.reports import registered_reports

    return registered_reports()


@hookimpl
def crm_survey_response_recorded(event: SurveyResponseRecorded, ctx: HookContext) -> None:
    """The shipped rules: a detractor opens a ticket or alerts the owner, a promoter is asked to refer a friend."""
    from crmcore_surveys.rules import apply_rules

    apply_rules(event, ctx)


@hookimpl
def crm_lead_score_contributions(contact: Contact, ctx: HookContext) -> list[ScoreContribution]:
    """Points for a contact's latest headline answer: a promoter's up, a detractor's down."""
    from crmcore_surveys.rules import score_contributions

    return score_contributions(contact, ctx)


@hookimpl
def crm_contact_merged(event: ContactMerged, ctx: HookContext) -> None:
    """The merged contact's invitations and responses now belong to the survivor."""
    from sqlalchemy import update

    from crmcore_surveys.models import Invitation, SurveyResponse

    for table in (Invitation, SurveyResponse):
        ctx.session.execute(
            update(table).where(table.contact_id == event.merged_id).values(contact_id=event.survivor_id)
        )


@hookimpl
def crm_contact_erased(event: ContactErased, ctx: HookContext) -> None:
    """Erase what the contact wrote and unlink their invitations and responses; scores stay for results."""
    from sqlalchemy import select, update

    from crmcore_surveys.models import Answer, Invitation, SurveyResponse

    theirs = select(SurveyResponse.id).where(SurveyResponse.contact_id == event.contact_id)
    ctx.session.execute(update(Answer).where(Answer.response_id.in_(theirs), Answer.kind == "text").values(text=None))
    for table in (SurveyResponse, Invitation):
        ctx.session.execute(update(table).where(table.contact_id == event.contact_id).values(contact_id=None))


@hookimpl
def crm_demo_day(day: DemoDay) -> None:
    """Buyers (and people whose ticket was solved) are asked; some answer, some comment."""
    from crmcore_surveys.demo import simulate

    simulate(day)

"""Sequences started by lifecycle hooks (and any published hook), stop conditions, reminders; A/B subject tests."""

from __future__ import annotations

import sys
import types
from typing import Any

import attrs
import pytest
from sqlalchemy import select

from crmcore import hookimpl
from crmcore.errors import ValidationError
from crmcore.hooks import hookspec
from crmcore.models import Activity
from crmcore.plugins import PluginInfo

from .conftest import TestSegments


@pytest.fixture
def dormant_customer(crm: Any, clock: Any) -> Any:
    """Ada, a customer owned by rep Rita, whose last order was a year ago."""
    rita = crm.users.add("rita@example.com", "Rita Rep")
    crm.products.add(sku="PRO", name="Pro plan")
    crm.contacts.add(email="ada@example.com", first_name="Ada", owner=rita.id)
    crm.customers.record_purchase("ada@example.com", sku="PRO", price="100")
    clock.advance(days=366)
    return crm.contacts.get("ada@example.com")


def _subjects(smtp_server: Any, address: str) -> list[str]:
    return [str(m["Subject"]) for m in smtp_server.to(address)]


def test_the_shipped_dormant_sequence_re_engages_by_email_then_reminds_the_owner_rep(
    crm, em, dormant_customer, smtp_server, run_due_jobs, clock
):
    em.sequences.install_example("dormant")
    crm.contacts.move_stage("ada@example.com", "dormant", reason="no orders for a year")
    run_due_jobs()
    assert _subjects(smtp_server, "ada@example.com") == ["Ada, we miss you"]
    first = smtp_server.to("ada@example.com")[0]
    assert str(first["List-Unsubscribe"]).strip().startswith("<https://crm.example.com/email/u/")
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    clock.advance(days=6)
    run_due_jobs()
    assert len(smtp_server.to("ada@example.com")) == 1  # the second step waits 7 days
    clock.advance(days=1)
    run_due_jobs()
    assert _subjects(smtp_server, "ada@example.com")[1] == "Your 10% off ends soon"
    clock.advance(days=3)
    run_due_jobs()
    with crm.transaction(readonly=True) as ctx:
        [reminder] = ctx.session.scalars(select(Activity)).all()
    assert reminder.kind == "follow_up" and reminder.owner_id == dormant_customer.owner_id
    assert reminder.subject.startswith("Call: dormant customer did not come back")
    [enrollment] = em.sequences.enrollments("Dormant re-engagement")
    assert enrollment.state == "done"


@pytest.mark.parametrize("condition", ["converted", "replied", "unsubscribed"])
def test_a_sequence_stops_when_the_contact_converts_replies_or_unsubscribes(
    crm, em, dormant_customer, smtp_server, run_due_jobs, clock, condition
):
    em.sequences.install_example("dormant")
    crm.contacts.move_stage("ada@example.com", "dormant", reason="no orders for a year")
    run_due_jobs()
    clock.advance(days=2)
    if condition == "converted":
        crm.customers.record_purchase("ada@example.com", sku="PRO", price="100")
    elif condition == "replied":
        crm.interactions.log("ada@example.com", kind="email", direction="in", subject="Re: we miss you")
    else:
        em.suppressions.unsubscribe(dormant_customer.id)
    clock.advance(days=20)
    run_due_jobs()
    assert len(smtp_server.to("ada@example.com")) == 1
    [enrollment] = em.sequences.enrollments("Dormant re-engagement")
    assert (enrollment.state, enrollment.stop_reason) == ("stopped", condition)
    with crm.transaction(readonly=True) as ctx:
        assert ctx.session.scalars(select(Activity)).all() == []


def test_a_sequence_trigger_must_be_a_hook_that_exists(em, newsletter):
    with pytest.raises(ValidationError) as bad:
        em.sequences.create("Oops", trigger="crm_lead_catpured", steps=[{"delay": "1x", "template": "newsletter"}])
    assert "cannot start a sequence" in bad.value.errors["trigger"]
    assert "is not a delay" in bad.value.errors["steps.1.delay"]


# -- any hook a plugin publishes -------------------------------------------------------


@attrs.frozen(kw_only=True)
class TrialStarted:
    contact_id: int
    plan: str


def _trial_specs() -> types.ModuleType:
    module = types.ModuleType("trial_hookspecs")

    @hookspec
    def crm_trial_started(event: TrialStarted, ctx: Any) -> None:
        """A trial started (a test plugin's published hook)."""

    module.crm_trial_started = crm_trial_started  # type: ignore[attr-defined]
    sys.modules.setdefault("trial_hookspecs", module)
    return module


class TrialPlugin:
    plugin_info = PluginInfo(name="trials", hookspecs=(_trial_specs(),))

    @hookimpl
    def crm_register_settings(self) -> list[Any]:
        return []


def test_any_hook_a_plugin_publishes_can_start_a_sequence(crm_factory, email_settings, smtp_settings, smtp_server):
    from crmcore_email_marketing import email_marketing

    settings = {**email_settings, "sequence_hooks": "crm_lead_captured,crm_trial_started"}
    crm = crm_factory(plugins=["email_marketing", TestSegments(), TrialPlugin()], **smtp_settings,
                      base_url="https://crm.example.com", plugin_settings={"email_marketing": settings})  # fmt: skip
    em = email_marketing(crm)
    em.templates.create("trial", subject="Your {{ contact.first_name }} trial", html="<p>Tips for your trial</p>")
    em.sequences.create("Trial tips", trigger="crm_trial_started", steps=[{"delay": 0, "template": "trial"}])
    contact = crm.contacts.add(email="grace@example.com", first_name="Grace")
    with crm.transaction() as ctx:
        ctx.call("crm_trial_started", event=TrialStarted(contact_id=contact.id, plan="pro"))
    crm.jobs.run_due()
    assert _subjects(smtp_server, "grace@example.com") == ["Your Grace trial"]


def test_under_opt_in_a_contact_without_consent_gets_no_sequence_mail(
    crm_factory, email_settings, smtp_settings, smtp_server
):
    from crmcore_email_marketing import email_marketing

    settings = {**email_settings, "consent_regime": "opt_in"}
    crm = crm_factory(plugins=["email_marketing", TestSegments()], **smtp_settings,
                      plugin_settings={"email_marketing": settings})  # fmt: skip
    em = email_marketing(crm)
    em.templates.create("welcome", subject="Welcome", html="<p>Welcome</p>")
    em.sequences.create("Welcome", trigger="crm_lead_captured", steps=[{"delay": 0, "template": "welcome"}])
    crm.leads.capture(email="nobody-asked@example.com")
    consenting = crm.leads.capture(email="yes@example.com")
    crm.consent.grant(consenting.id, "marketing", "email", source="test")
    crm.jobs.run_due()
    assert [str(m["To"]) for m in smtp_server.messages] == ["yes@example.com"]
    [first, second] = em.sequences.enrollments("Welcome")
    assert (first.state, first.stop_reason) == ("stopped", "unsubscribed")
    assert (second.state, second.stop_reason) == ("done", None)


# -- campaigns under opt-in, the published hook, A/B tests --------------------------------


def test_under_opt_in_only_consenting_contacts_get_the_campaign(
    crm_factory, email_settings, smtp_settings, smtp_server
):
    from crmcore_email_marketing import email_marketing

    settings = {**email_settings, "consent_regime": "opt_in"}
    crm = crm_factory(plugins=["email_marketing", TestSegments()], **smtp_settings,
                      plugin_settings={"email_marketing": settings})  # fmt: skip
    em = email_marketing(crm)
    em.templates.create("t", subject="Hi", html="<p>Hi</p>")
    for name in ("ada", "grace", "alan"):
        crm.contacts.add(email=f"{name}@example.com")
    crm.consent.grant("ada@example.com", "marketing", "email", source="form:newsletter")
    crm.consent.grant("grace@example.com", "marketing", "email", source="form:newsletter")
    crm.consent.withdraw("grace@example.com", "marketing", "email", source="preference centre")
    em.campaigns.create("Spring", template="t", segment="everyone")
    em.campaigns.send("Spring")
    crm.jobs.run_due()
    assert [str(m["To"]) for m in smtp_server.messages] == ["ada@example.com"]
    reasons = {r["email"]: r["reason"] for r in em.campaigns.skipped("Spring")}
    assert reasons == {"grace@example.com": "no marketing consent", "alan@example.com": "no marketing consent"}


def test_every_sent_message_is_announced_with_crm_campaign_message_sent(
    crm, em, newsletter, people, smtp_server, run_due_jobs, hook_calls
):
    em.campaigns.create("Spring", template="newsletter", segment="germans")
    em.campaigns.send("Spring")
    run_due_jobs()
    events = [call["event"] for call in hook_calls.of("crm_campaign_message_sent")]
    assert sorted(e.email for e in events) == ["ada@example.com", "alan@example.com", "barbara@example.com"]
    assert {e.campaign for e in events} == {"Spring"}
    assert {e.message_id for e in events} == {str(m["Message-ID"]).strip() for m in smtp_server.messages}


def test_an_ab_subject_test_sends_the_winner_to_everyone_else(crm_factory, email_settings, smtp_settings, smtp_server,
                                                               clock):  # fmt: skip
    from crmcore_email_marketing import email_marketing
    from crmcore_email_marketing.models import Recipient

    settings = {**email_settings, "batch_size": 50, "fill_chunk": 50}
    crm = crm_factory(plugins=["email_marketing", TestSegments()], **smtp_settings,
                      plugin_settings={"email_marketing": settings})  # fmt: skip
    em = email_marketing(crm)
    em.templates.create("t", subject="Plain", html="<p>Hi {{ contact.first_name }}</p>")
    for index in range(40):
        crm.contacts.add(email=f"p{index}@example.com", first_name=f"P{index}")
    em.campaigns.create("Test", template="t", segment="everyone")
    em.campaigns.ab_test("Test", {"A": "Spring is here, {{ contact.first_name }}", "B": "20% off this week"},
                         metric="opens", sample_percent=50, wait_minutes=60)  # fmt: skip
    em.campaigns.send("Test")
    crm.jobs.run_due()
    sample = list(smtp_server.messages)
    subjects = {str(m["Subject"]) for m in sample}
    assert 10 <= len(sample) <= 30 and "20% off this week" in subjects
    assert any(s.startswith("Spring is here, P") for s in subjects)
    with crm.transaction(readonly=True) as ctx:
        b_people = ctx.session.execute(
            select(Recipient.campaign_id, Recipient.contact_id).where(Recipient.variant == "B")
        ).all()
    for campaign_id, contact_id in b_people:  # variant B gets opened
        em.tracking.record_open(campaign_id, contact_id)
    clock.advance(minutes=61)
    crm.jobs.run_due()
    assert len(smtp_server.messages) == 40
    assert len({str(m["To"]) for m in smtp_server.messages}) == 40
    rest = smtp_server.messages[len(sample) :]
    assert {str(m["Subject"]) for m in rest} == {"20% off this week"}
    assert em.campaigns.get("Test").ab_winner == "B" and em.campaigns.get("Test").state == "done"

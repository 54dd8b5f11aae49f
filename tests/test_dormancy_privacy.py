"""Dormancy (configurable period, listing, purge) and the privacy edges of merge, erase and export."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from crmcore import hookimpl
from crmcore.errors import NotFound, ValidationError
from crmcore.models import Purchase, Touchpoint
from crmcore.services.contacts import parse_period

pytestmark = pytest.mark.databases("sqlite", "postgresql", "mariadb")


@pytest.fixture
def crm_settings():
    return {"dormant_after_days": 30}


@pytest.fixture
def customers(crm, clock):
    """Three customers: idle for 40 days, for 400 days, and one who came back last week; plus an idle lead."""
    crm.products.add("PRO", "Pro", unit_price="99.00")
    made = {}
    for name in ("old", "idle", "back"):
        made[name] = crm.contacts.add(email=f"{name}@example.com").id
    crm.customers.record_purchase(made["old"], sku="PRO")
    clock.advance(days=360)
    crm.customers.record_purchase(made["idle"], sku="PRO")
    crm.customers.record_purchase(made["back"], sku="PRO")
    crm.contacts.add(email="lead@example.com")
    clock.advance(days=33)
    crm.touchpoints.record(made["back"], kind="visit")
    clock.advance(days=7)
    return made


def test_dormant_lists_customers_idle_for_the_configured_period(crm, customers, cli):
    assert [c.id for c in crm.contacts.dormant()] == [customers["old"], customers["idle"]]
    assert [c.id for c in crm.contacts.dormant(period="1y")] == [customers["old"]]
    out = cli("contact", "dormant", "--format", "csv").output.splitlines()
    assert [line.split(",")[1] for line in out[1:]] == ["old@example.com", "idle@example.com"]


def test_the_daily_check_uses_the_setting_and_fires_the_hook(crm, customers, run_due_jobs, hook_calls):
    run_due_jobs()
    assert {crm.contacts.get(i).stage for i in (customers["old"], customers["idle"])} == {"dormant"}
    assert crm.contacts.get(customers["back"]).stage == "customer"
    fired = sorted(e["event"].contact_id for e in hook_calls.of("crm_customer_became_dormant"))
    assert fired == sorted([customers["old"], customers["idle"]])
    assert [c.id for c in crm.contacts.dormant()] == [customers["old"], customers["idle"]]  # still listed


def test_purge_asks_then_erases_and_keeps_the_aggregates(crm, customers, cli):
    declined = cli("contact", "purge", "--dormant-for", "1y", input="n\n")
    assert declined.exit_code == 1 and "Erase 1 contacts dormant for 1y?" in declined.output
    assert crm.contacts.get(customers["old"]).erased_at is None
    done = cli("contact", "purge", "--dormant-for", "1y", "--yes")
    assert done.exit_code == 0 and "erased 1 contacts" in done.output
    old = crm.contacts.get(customers["old"])
    assert old.erased_at is not None and old.email is None
    assert crm.contacts.get(customers["idle"]).erased_at is None
    with crm.transaction(readonly=True) as ctx:  # revenue stays for the reports
        assert ctx.scalar(select(func.sum(Purchase.total))) == Decimal("297.00")
    assert "no contacts dormant for 1y" in cli("contact", "purge", "--dormant-for", "1y", "--yes").output


class LegalHold:
    def __init__(self, email):
        self.email = email

    @hookimpl
    def crm_contact_before_erase(self, contact, ctx):
        if contact.email_normalized == self.email:
            raise ValidationError({"contact": "under legal hold until 2027"})


def test_a_plugin_veto_keeps_that_contact_and_the_purge_goes_on(crm_factory, clock):
    crm = crm_factory(plugins=[LegalHold("held@example.com")])
    crm.products.add("PRO", "Pro", unit_price="10")
    ids = [crm.contacts.add(email=f"{n}@example.com").id for n in ("held", "free")]
    for contact_id in ids:
        crm.customers.record_purchase(contact_id, sku="PRO")
    clock.advance(days=400)
    result = crm.contacts.purge_dormant("1y")
    assert result.erased == [ids[1]] and "legal hold" in result.refused[ids[0]]
    assert crm.contacts.get(ids[0]).email == "held@example.com"


def test_erase_reaches_touchpoint_details_and_unknown_contacts_are_clear_errors(crm, cli):
    ada = crm.contacts.add(email="ada@example.com")
    crm.touchpoints.record(ada.id, kind="email_click", campaign="spring", url="https://x.test/?email=ada@example.com")
    crm.contacts.erase(ada.id)
    with crm.transaction(readonly=True) as ctx:
        [touch] = ctx.session.scalars(select(Touchpoint)).all()
    assert (touch.url, touch.campaign, touch.contact_id) == (None, "spring", ada.id)  # counts stay
    with pytest.raises(NotFound, match=r"'nobody@example\.com' not found"):
        crm.contacts.erase("nobody@example.com")
    answer = cli("contact", "erase", "nobody@example.com", "--yes")
    assert answer.exit_code == 1 and answer.output.strip() == "error: contact 'nobody@example.com' not found"


def test_merge_with_itself_is_refused(crm, cli):
    ada = crm.contacts.add(email="ada@example.com")
    answer = cli("contact", "merge", str(ada.id), "ada@example.com")
    assert answer.exit_code == 1 and "cannot merge a contact with itself" in answer.output


def test_export_person_includes_the_consent_ledger(crm, cli):
    ada = crm.contacts.add(email="ada@example.com")
    crm.consent.grant(ada.id, "marketing", "email", source="form:news", ip="203.0.113.9")
    crm.consent.withdraw(ada.id, "marketing", "email", source="unsubscribe")
    import json

    data = json.loads(cli("contact", "export", "ada@example.com").output)
    assert [c["status"] for c in data["consent"]] == ["withdrawn"]
    assert [h["action"] for h in data["consent_history"]] == ["granted", "withdrawn"]


@pytest.mark.databases("sqlite")
def test_periods_parse_or_are_refused_clearly(crm):
    assert parse_period("3y").days == 1095 and parse_period("18m").days == 540 and parse_period("2w").days == 14
    for bad in ("3 years", "0d", "y", "-1d"):
        with pytest.raises(ValidationError, match="is not a period such as 90d"):
            parse_period(bad)

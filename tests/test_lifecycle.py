"""The lead-to-customer lifecycle through the services, as a user would drive it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.models import AuditEntry, Contact, LifecycleChange, Purchase, Touchpoint


def count(crm, model):
    with crm.transaction() as ctx:
        return ctx.session.scalar(select(func.count()).select_from(model))


def test_capture_qualify_buy_the_whole_story(crm, hook_calls):
    rep = crm.users.add("rita@example.com", "Rita Rep")
    lead = crm.leads.capture(
        email="Ada@Example.com",
        first_name="Ada",
        touch={"kind": "form", "utm_source": "google", "utm_campaign": "spring"},
    )
    assert lead.stage == "lead" and lead.owner_id == rep.id and lead.source == "google"

    crm.leads.qualify(lead.id, reason="budget confirmed", actor="rita@example.com")
    crm.products.add("PRO", "Pro plan", unit_price="99.00")
    purchase = crm.customers.record_purchase(lead.id, sku="PRO", quantity=2)

    assert purchase.total == Decimal("198.00")
    assert crm.contacts.get("ada@example.com").stage == "customer"
    names = hook_calls.names()
    for hook in ("crm_lead_captured", "crm_lead_qualified", "crm_purchase_recorded", "crm_customer_converted"):
        assert hook in names
    assert names.index("crm_purchase_recorded") < names.index("crm_customer_converted")
    stages = [item["text"] for item in crm.contacts.timeline(lead.id) if item["kind"] == "stage"]
    assert stages == [
        "prospect -> customer (first purchase)",
        "lead -> prospect (budget confirmed)",
        "became lead (captured)",
    ]


def test_known_email_records_the_touch_on_the_existing_contact(crm):
    first = crm.leads.capture(email="ada@example.com", touch={"kind": "form"})
    again = crm.leads.capture(email="  ADA@example.COM ", phone="+1 415 555 2671", touch={"kind": "email_click"})
    assert again.id == first.id and again.created is False and first.created is True
    assert again.phone_normalized == "+14155552671"  # missing fields are filled in
    assert count(crm, Contact) == 1
    assert [t.kind for t in crm.touchpoints.list(first.id)] == ["email_click", "form"]


def test_duplicate_by_phone_when_no_email(crm):
    first = crm.leads.capture(phone="(415) 555-2671")
    again = crm.leads.capture(phone="+1 415-555-2671", first_name="Bea")
    assert again.id == first.id and again.first_name == "Bea"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "ok@example.com", "phone": "12"}, "phone"),
        ({"email": "ok@example.com", "country": "Germany"}, "country"),
        ({"email": "ok@example.com", "owner": "ghost@example.com"}, "owner"),
        ({"email": "ok@example.com", "favourite_colour": "blue"}, "favourite_colour"),
        ({"email": "ok@example.com", "custom": {"industry": "x"}}, "custom.industry"),
        ({}, "email"),
    ],
)
def test_invalid_input_names_the_field_and_writes_nothing(crm, fields, field):
    with pytest.raises(ValidationError) as info:
        crm.leads.capture(**fields)
    assert field in info.value.errors
    assert count(crm, Contact) == 0 and count(crm, AuditEntry) == 0


def test_every_error_of_a_request_is_reported_at_once(crm):
    with pytest.raises(ValidationError) as info:
        crm.contacts.add(email="bad", phone="x", country="nowhere")
    assert set(info.value.errors) == {"email", "phone", "country"}


def test_adding_an_existing_email_is_a_conflict(crm):
    crm.contacts.add(email="ada@example.com")
    with pytest.raises(Conflict, match="already exists"):
        crm.contacts.add(email="ADA@example.com")
    assert count(crm, Contact) == 1


def test_negative_price_and_unknown_product_are_refused(crm):
    lead = crm.leads.capture(email="ada@example.com")
    crm.products.add("PRO", "Pro plan", unit_price="99.00")
    with pytest.raises(ValidationError, match="positive"):
        crm.customers.record_purchase(lead.id, sku="PRO", price="-5")
    with pytest.raises(ValidationError, match="no product with SKU"):
        crm.customers.record_purchase(lead.id, sku="NOPE", price="5")
    with pytest.raises(ValidationError, match="at least 1"):
        crm.customers.record_purchase(lead.id, sku="PRO", quantity=0)
    assert count(crm, Purchase) == 0
    assert crm.contacts.get(lead.id).stage == "lead"


def test_same_order_reference_twice_is_refused(crm):
    lead = crm.leads.capture(email="ada@example.com")
    crm.products.add("PRO", "Pro plan", unit_price="99.00")
    crm.customers.record_purchase(lead.id, sku="PRO", external_ref="ORDER-1")
    with pytest.raises(Conflict):
        crm.customers.record_purchase(lead.id, sku="PRO", external_ref="ORDER-1")
    assert count(crm, Purchase) == 1


def test_purchase_lines_keep_rep_date_price_and_instructions(crm):
    rep = crm.users.add("rita@example.com", "Rita")
    lead = crm.leads.capture(email="ada@example.com")
    crm.products.add("PRO", "Pro plan", unit_price="99.00", currency="EUR")
    crm.products.add("SUP", "Support", unit_price="10.00", currency="EUR")
    purchase = crm.customers.record_purchase(
        lead.id,
        lines=[{"sku": "PRO", "price": "89.50"}, {"sku": "SUP", "quantity": 3}],
        currency="EUR",
        purchased_at="2025-12-24T10:00:00+01:00",
        rep="rita@example.com",
        special_instructions="Deliver after New Year",
    )
    assert purchase.total == Decimal("119.50") and purchase.currency == "EUR"
    assert purchase.rep_id == rep.id and purchase.purchased_at.isoformat() == "2025-12-24T09:00:00+00:00"
    assert purchase.special_instructions == "Deliver after New Year"


def test_opportunity_through_the_pipeline_to_won_makes_a_customer(crm, hook_calls):
    lead = crm.leads.capture(email="ada@example.com")
    opportunity = crm.sales.create_opportunity(lead.id, name="Annual plan", amount="12000")
    crm.sales.move(opportunity.id, "proposal")
    crm.sales.win(opportunity.id)
    assert crm.sales.get_opportunity(opportunity.id).status == "won"
    assert crm.contacts.get(lead.id).stage == "customer"
    assert hook_calls.names().count("crm_opportunity_stage_changed") == 2
    assert "crm_opportunity_won" in hook_calls.names()


def test_lost_needs_a_reason_and_unknown_stage_lists_the_valid_ones(crm):
    opportunity = crm.sales.create_opportunity(None, name="Maybe", amount="10")
    with pytest.raises(ValidationError, match="no stage 'signed'; stages: qualification, needs_analysis"):
        crm.sales.move(opportunity.id, "signed")
    with pytest.raises(ValidationError, match="reason"):
        crm.sales.move(opportunity.id, "lost")
    crm.sales.lose(opportunity.id, reason="no budget")
    with pytest.raises(Conflict, match="already lost"):
        crm.sales.win(opportunity.id)


def test_customers_move_back_with_a_reason(crm, hook_calls):
    lead = crm.leads.capture(email="ada@example.com")
    crm.customers.convert(lead.id, reason="signed offline")
    crm.contacts.move_stage(lead.id, "dormant", reason="no orders this year")
    crm.contacts.move_stage(lead.id, "former", reason="closed the company")
    assert crm.contacts.get(lead.id).stage == "former"
    assert "crm_customer_became_dormant" in hook_calls.names()
    with pytest.raises(ValidationError, match="cannot move a former to dormant"):
        crm.contacts.move_stage(lead.id, "dormant", reason="x")
    with crm.transaction() as ctx:
        moves = ctx.session.scalars(select(LifecycleChange.to_stage).order_by(LifecycleChange.id)).all()
    assert moves == ["lead", "customer", "dormant", "former"]


def test_score_sums_contributions_with_reasons_and_decays(crm, clock):
    lead = crm.leads.capture(email="ada@example.com", phone="+14155552671", touch={"kind": "form"})
    total, reasons = crm.leads.score(lead.id)
    assert total == 20
    assert {(c.points, c.reason) for c in reasons} == {(5, "has a phone number"), (15, "filled in a form (1x)")}
    clock.advance(days=60)  # two half-lives
    total_later, _ = crm.leads.score(lead.id)
    assert total_later == 5 + 4


def test_score_rule_qualifies_and_threshold_hook_fires(crm_factory, hook_calls):
    crm = crm_factory(qualify_score=40, score_thresholds="30")
    lead = crm.leads.capture(email="ada@example.com", touch={"kind": "form"})
    crm.touchpoints.record(lead.id, kind="form")
    assert crm.contacts.get(lead.id).stage == "lead"
    crm.touchpoints.record(lead.id, kind="form")
    contact = crm.contacts.get(lead.id)
    assert contact.stage == "prospect" and contact.score == 45


def test_interactions_and_activities_with_a_reminder_timer(crm, clock, run_due_jobs):
    from crmcore import hookimpl

    reminded = []

    class Notify:
        @hookimpl
        def crm_activity_reminder_due(self, event, ctx):
            reminded.append((event.subject, ctx.now))

    crm.plugins.pm.register(Notify(), name="notify")
    crm.users.add("rita@example.com", "Rita")
    lead = crm.leads.capture(email="ada@example.com")
    call = crm.interactions.log(lead.id, kind="call", subject="Pricing", duration_minutes=15, actor="rita@example.com")
    assert call.user_id is not None
    crm.sales.add_activity(
        kind="follow_up",
        subject="Send the quote",
        contact=lead.id,
        due_at="2026-01-06T09:00:00+00:00",
        remind_at="2026-01-06T08:45:00+00:00",
    )
    run_due_jobs()
    assert reminded == []
    clock.set("2026-01-06T08:45:00+00:00")
    run_due_jobs()
    assert reminded == [("Send the quote", clock.now())]
    run_due_jobs()
    assert len(reminded) == 1


def test_completed_activity_cancels_its_reminder(crm, clock, run_due_jobs):
    activity = crm.sales.add_activity(kind="call", subject="Call back", remind_at="2026-01-05T10:00:00+00:00")
    crm.sales.complete_activity(activity.id)
    clock.advance(hours=2)
    run_due_jobs()
    assert [j.state for j in crm.jobs.list(handler="core.activity_reminder")] == ["cancelled"]


def test_dormancy_check_moves_inactive_customers(crm, clock, run_due_jobs, hook_calls):
    active = crm.leads.capture(email="busy@example.com")
    idle = crm.leads.capture(email="idle@example.com")
    crm.customers.convert(active.id, reason="signed")
    crm.customers.convert(idle.id, reason="signed")
    clock.advance(days=300)
    crm.touchpoints.record(active.id, kind="visit")
    clock.advance(days=100)
    run_due_jobs()
    assert crm.contacts.get(idle.id).stage == "dormant"
    assert crm.contacts.get(active.id).stage == "customer"
    assert [e["event"].contact_id for e in hook_calls.of("crm_customer_became_dormant")] == [idle.id]


def test_merge_moves_everything_to_the_survivor(crm):
    keep = crm.leads.capture(email="ada@example.com", touch={"kind": "form"})
    dupe = crm.contacts.add(email="ada.lovelace@example.com", phone="+14155552671", tags=["vip"])
    crm.touchpoints.record(dupe.id, kind="visit")
    crm.products.add("PRO", "Pro", unit_price="1")
    crm.customers.record_purchase(dupe.id, sku="PRO")
    survivor = crm.contacts.merge(keep.id, dupe.id)
    assert survivor.phone_normalized == "+14155552671" and survivor.stage == "customer"
    assert len(crm.touchpoints.list(keep.id)) == 2
    assert crm.contacts.tags(keep.id) == ["vip"]
    assert crm.contacts.get(dupe.id).merged_into_id == keep.id
    with pytest.raises(ValidationError, match="itself"):
        crm.contacts.merge(keep.id, keep.id)


def test_erase_removes_personal_data_and_keeps_aggregates(crm, hook_calls):
    lead = crm.leads.capture(email="ada@example.com", first_name="Ada", touch={"kind": "form", "referrer": "x"})
    crm.products.add("PRO", "Pro", unit_price="50")
    crm.customers.record_purchase(lead.id, sku="PRO", special_instructions="ring twice")
    crm.contacts.erase(lead.id)
    erased = crm.contacts.get(lead.id)
    assert erased.email is None and erased.first_name is None and erased.erased_at is not None
    assert count(crm, Touchpoint) == 1 and count(crm, Purchase) == 1
    assert crm.customers.purchases(lead.id)[0].special_instructions is None
    with pytest.raises(NotFound):
        crm.contacts.get("ada@example.com")
    assert "crm_contact_erased" in hook_calls.names()
    with pytest.raises(Conflict):
        crm.contacts.erase(lead.id)


def test_custom_fields_are_declared_validated_and_stored(crm):
    from crmcore.registry import CustomFieldSpec

    crm.custom_fields.define(
        CustomFieldSpec(name="industry", label="Industry", type="choice", choices=("dental", "software"))
    )
    crm.custom_fields.define(CustomFieldSpec(name="seats", label="Seats", type="integer"))
    lead = crm.leads.capture(email="ada@example.com", custom={"industry": "dental", "seats": "12"})
    assert lead.custom == {"industry": "dental", "seats": 12}
    with pytest.raises(ValidationError) as info:
        crm.contacts.update(lead.id, custom={"industry": "bakery", "seats": "many"})
    assert set(info.value.errors) == {"custom.industry", "custom.seats"}


def test_every_change_is_in_the_audit_trail_with_its_actor(crm):
    crm.users.add("rita@example.com", "Rita")
    lead = crm.leads.capture(email="ada@example.com", actor="rita@example.com")
    crm.contacts.update(lead.id, first_name="Ada", actor="rita@example.com")
    with crm.transaction() as ctx:
        entries = ctx.session.scalars(select(AuditEntry).where(AuditEntry.entity == "contact")).all()
    assert [(e.action, e.actor) for e in entries] == [
        ("lead.capture", "user:rita@example.com"),
        ("contact.update", "user:rita@example.com"),
    ]
    assert entries[1].changes == {"first_name": "Ada"}


def test_money_is_decimal_and_times_are_aware_utc(crm):
    lead = crm.leads.capture(email="ada@example.com")
    crm.products.add("PRO", "Pro", unit_price="0.10")
    purchase = crm.customers.record_purchase(lead.id, sku="PRO", quantity=3)
    fresh = crm.customers.purchases(lead.id)[0]
    assert fresh.total == Decimal("0.30") and isinstance(fresh.total, Decimal)
    assert purchase.purchased_at.utcoffset().total_seconds() == 0
    assert crm.contacts.get(lead.id).created_at.tzinfo is not None

"""Saved segments: definitions over fields, custom fields, tags, touchpoints, purchases, consent."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.models import Contact
from crmcore.registry import CustomFieldSpec

pytestmark = pytest.mark.databases("sqlite", "postgresql", "mariadb")


@pytest.fixture
def people(crm, clock):
    """Five contacts with a spread of stages, tags, custom values, touchpoints and purchases."""
    crm.custom_fields.define(CustomFieldSpec(entity="contact", name="plan", label="Plan", type="choice",
                                             choices=("free", "pro", "team")))  # fmt: skip
    crm.custom_fields.define(CustomFieldSpec(entity="contact", name="seats", label="Seats", type="integer"))
    crm.products.add("PRO", "Pro plan", unit_price="99.00")
    crm.products.add("MUG", "Mug", unit_price="9.00")
    ada = crm.contacts.add(email="ada@example.com", country="GB", tags=["vip"], custom={"plan": "pro", "seats": 12})
    bob = crm.contacts.add(email="bob@example.com", country="DE", custom={"plan": "free", "seats": 1})
    cyd = crm.contacts.add(email="cyd@example.com", country="DE", tags=["vip", "press"])
    dee = crm.contacts.add(email="dee@example.com", first_name="Dee")
    eve = crm.contacts.add(email="eve@example.com", custom={"plan": "team", "seats": 40})
    for _ in range(3):
        crm.touchpoints.record(ada.id, kind="email_click", campaign="spring")
    crm.touchpoints.record(bob.id, kind="email_click", campaign="spring")
    crm.touchpoints.record(cyd.id, kind="email_click", campaign="spring",
                           occurred_at=(clock.now() - timedelta(days=90)).isoformat())  # fmt: skip
    crm.touchpoints.record(dee.id, kind="ad_click", campaign="autumn")
    crm.customers.record_purchase(ada.id, sku="PRO", price="99.00")
    crm.customers.record_purchase(bob.id, sku="MUG", price="9.00", quantity=2)
    crm.customers.record_purchase(eve.id, sku="PRO", price="99.00",
                                  purchased_at=(clock.now() - timedelta(days=400)).isoformat())  # fmt: skip
    crm.customers.record_purchase(eve.id, sku="PRO", price="99.00")
    crm.consent.grant(bob.id, "marketing", "email", source="form:signup")
    crm.consent.grant(dee.id, "marketing", "email", source="form:signup")
    return {c.email.split("@")[0]: c.id for c in (ada, bob, cyd, dee, eve)}


def members(crm, definition):
    name = f"s{abs(hash(json.dumps(definition, sort_keys=True)))}"
    crm.segments.create(name, definition)
    ids = {c.id for c in crm.segments.members(name)}
    assert crm.segments.count(name) == len(ids)
    return ids


def names(people, ids):
    return {name for name, contact_id in people.items() if contact_id in ids}


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"field": "country", "value": "DE"}, {"bob", "cyd"}),
        ({"field": "country", "op": "ne", "value": "DE"}, {"ada", "dee", "eve"}),
        ({"field": "stage", "value": "customer"}, {"ada", "bob", "eve"}),
        ({"field": "first_name", "op": "is_null", "value": False}, {"dee"}),
        ({"field": "email", "op": "startswith", "value": "A"}, {"ada"}),
        ({"field": "custom.plan", "op": "in", "value": ["pro", "team"]}, {"ada", "eve"}),
        ({"field": "custom.seats", "op": "gte", "value": 12}, {"ada", "eve"}),
        ({"tag": "vip"}, {"ada", "cyd"}),
        ({"all": [{"tag": "vip"}, {"not": {"tag": "press"}}]}, {"ada"}),
        ({"any": [{"tag": "press"}, {"field": "custom.plan", "value": "team"}]}, {"cyd", "eve"}),
        ({"touchpoint": {"kind": "email_click", "campaign": "spring"}}, {"ada", "bob", "cyd"}),
        ({"touchpoint": {"campaign": "spring", "within_days": 30}}, {"ada", "bob"}),
        ({"touchpoint": {"kind": "email_click", "min_count": 2}}, {"ada"}),
        ({"touchpoint": {"kind": ["email_click", "ad_click"], "max_count": 1}}, {"bob", "cyd", "dee"}),
        ({"touchpoint": {"kind": ["email_click", "ad_click"], "min_count": 0, "max_count": 1}},
         {"bob", "cyd", "dee", "eve"}),
        ({"not": {"touchpoint": {}}}, {"eve"}),
        ({"purchase": {"product": "PRO"}}, {"ada", "eve"}),
        ({"purchase": {"product": "PRO", "min_count": 2}}, {"eve"}),
        ({"purchase": {"min_total": 50, "within_days": 365}}, {"ada", "eve"}),
        ({"purchase": {"max_total": 20}}, {"bob"}),
        ({"purchase": {"min_sum": 150}}, {"eve"}),
        ({"consent": {"purpose": "marketing", "channel": "email"}}, {"bob", "dee"}),
        ({"field": "created_at", "op": "within_days", "value": 1}, {"ada", "bob", "cyd", "dee", "eve"}),
    ],
)
def test_definitions_select_the_right_contacts(crm, people, definition, expected):
    assert names(people, members(crm, definition)) == expected


def test_segments_answer_the_decision_hook_and_reports(crm, people):
    crm.segments.create("spring-clickers", {"touchpoint": {"campaign": "spring"}})
    crm.segments.create("vip-clickers", {"all": [{"segment": "spring-clickers"}, {"tag": "vip"}]})
    with crm.transaction(readonly=True) as ctx:
        query = ctx.call("crm_segment_query", name="vip-clickers")
        assert set(ctx.session.scalars(query)) == {people["ada"], people["cyd"]}
        # usable as a subquery in the caller's own statement (how campaigns target it)
        emails = set(ctx.session.scalars(select(Contact.email).where(Contact.id.in_(query))))
        assert emails == {"ada@example.com", "cyd@example.com"}
        assert ctx.call("crm_segment_query", name="nobody") is None
        assert set(crm.plugins.collect("crm_segment_names", ctx=ctx)) == {"spring-clickers", "vip-clickers"}


def test_erased_and_merged_contacts_are_never_members(crm, people):
    crm.segments.create("vips", {"tag": "vip"})
    crm.contacts.erase(people["cyd"])
    assert [c.id for c in crm.segments.members("vips")] == [people["ada"]]
    crm.segments.create("germans", {"field": "country", "value": "DE"})
    crm.contacts.merge(people["ada"], people["bob"])
    assert crm.segments.members("germans") == []


def test_unknown_field_lists_the_valid_ones(crm, people):
    with pytest.raises(ValidationError) as error:
        crm.segments.create("bad", {"all": [{"tag": "vip"}, {"field": "shoe_size", "value": 44}]})
    message = error.value.errors["definition.all[1].field"]
    assert "unknown field 'shoe_size'" in message and "custom.plan" in message and "last_activity_at" in message
    assert crm.segments.list() == []


@pytest.mark.parametrize(
    ("definition", "where", "fragment"),
    [
        ({"field": "stage", "value": "vip"}, "definition.value", "stages: lead"),
        ({"field": "score", "op": "around", "value": 1}, "definition.op", "operators: eq"),
        ({"field": "score", "op": "gt", "value": "many"}, "definition.value", "not a whole number"),
        ({"touchpoint": {"kind": "telepathy"}}, "definition.touchpoint.kind", "kinds: form"),
        ({"touchpoint": {"colour": "red"}}, "definition.touchpoint", "keys: kind"),
        ({"purchase": {"product": "NOPE"}}, "definition.purchase.product", "unknown product"),
        ({"consent": {"purpose": "spam"}}, "definition.consent", "purposes: marketing"),
        ({"segment": "missing"}, "definition.segment", "unknown segment"),
        ({"all": []}, "definition.all", "non-empty list"),
        ({"tag": "a", "segment": "x"}, "definition", "one key"),
        ({"tag": "a", "field": "x"}, "definition", "unknown key(s) tag"),
        ({"field": "created_at", "op": "contains", "value": "x"}, "definition.value", "only applies to text"),
    ],
)
def test_bad_definitions_are_refused_clearly(crm, people, definition, where, fragment):
    with pytest.raises(ValidationError) as error:
        crm.segments.create("bad", definition)
    assert fragment in error.value.errors[where]


def test_names_are_unique_cycles_are_refused_and_unknown_is_not_found(crm, people):
    crm.segments.create("a", {"tag": "vip"})
    with pytest.raises(Conflict):
        crm.segments.create("a", {"tag": "press"})
    crm.segments.create("b", {"segment": "a"})
    with pytest.raises(ValidationError, match="refers back to itself"):
        crm.segments.update("a", {"segment": "b"})
    with pytest.raises(NotFound, match="segments: a, b"):
        crm.segments.get("c")
    with pytest.raises(ValidationError, match="JSON"):
        crm.segments.create("c", "{not json")


def test_recency_follows_the_clock(crm, people, clock):
    crm.segments.create("recent-spring", {"touchpoint": {"campaign": "spring", "within_days": 30}})
    assert {c.id for c in crm.segments.members("recent-spring")} == {people["ada"], people["bob"]}
    clock.advance(timedelta(days=31))
    assert crm.segments.members("recent-spring") == []


def test_cli_create_list_show_members(crm, people, cli, tmp_path):
    result = cli("segment", "create", "vips", '{"tag": "vip"}', "--description", "Our best")
    assert result.exit_code == 0, result.output
    assert "2 contacts" in result.output
    path = tmp_path / "de.json"
    path.write_text(json.dumps({"field": "country", "value": "DE"}))
    assert cli("segment", "create", "germans", f"@{path}").exit_code == 0
    listed = json.loads(cli("segment", "list", "--format", "json").output)
    assert [(s["name"], s["contacts"]) for s in listed] == [("germans", 2), ("vips", 2)]
    shown = json.loads(cli("segment", "show", "vips", "--format", "json").output)
    assert shown["definition"] == {"tag": "vip"} and shown["description"] == "Our best"
    out = cli("segment", "members", "vips", "--format", "csv").output.splitlines()
    assert out[0].startswith("id,email") and {line.split(",")[1] for line in out[1:]} == {
        "ada@example.com", "cyd@example.com"}
    bad = cli("segment", "create", "x", '{"field": "nope"}')
    assert bad.exit_code == 1 and "unknown field 'nope'" in bad.output

"""Web behaviour feeds the explainable score; crossing the configured score makes a lead a prospect."""

from __future__ import annotations

import json

import pytest

from crmcore.links import signed_redirect_url


@pytest.fixture
def crm_settings():
    return {"qualify_score": 30, "score_thresholds": "20"}


def test_form_and_clicks_qualify_a_lead_by_the_score_rule(http, crm, cli, hook_calls):
    crm.forms.create("demo", title="Demo", fields=[{"name": "email", "type": "email", "required": True},
                                                    {"name": "phone", "type": "tel"}])  # fmt: skip
    assert http.post("/forms/demo", json={"email": "ada@example.com", "phone": "+1 415 555 2671"}).status_code == 201
    ada = crm.contacts.get("ada@example.com")
    assert (ada.stage, ada.score) == ("lead", 20)  # form 15 + phone 5 (fit)
    crosses = [c["event"] for c in hook_calls.of("crm_lead_score_threshold_crossed")]
    assert [(e.threshold, e.old_score, e.new_score) for e in crosses] == [(20, 0, 20)]

    def click(campaign):
        url = signed_redirect_url(crm, "https://shop.example.com/", contact_id=ada.id, campaign=campaign)
        assert http.get(url.removeprefix("http://127.0.0.1:8000"), follow_redirects=False).status_code == 302
        return crm.contacts.get(ada.id)

    assert (click("spring").stage, crm.contacts.get(ada.id).score) == ("lead", 25)
    crm.touchpoints.record(ada.id, kind="ad_click", ad="banner")
    assert crm.contacts.get(ada.id).score == 28
    ada = click("summer")
    assert (ada.stage, ada.score) == ("prospect", 33)

    shown = cli("contact", "show", "ada@example.com", "--score", "--timeline", "--format", "json")
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    reasons = {(r["points"], r["reason"]) for r in record["score_reasons"]}
    assert reasons == {(5, "has a phone number"), (15, "filled in a form (1x)"),
                       (10, "clicked an email link (2x)"), (3, "clicked an ad (1x)")}  # fmt: skip
    assert any(item["kind"] == "stage" and "lead -> prospect (score 33 >= 30)" in item["text"]
               for item in record["timeline"])  # fmt: skip
    assert "crm_lead_qualified" in hook_calls.names()


def test_conversion_and_affiliate_clicks_score(crm):
    lead = crm.leads.capture(email="bob@example.com", touch={"kind": "affiliate_click", "affiliate": "blog"})
    crm.touchpoints.record(lead.id, kind="conversion", value="10", external_id="o-1")
    total, reasons = crm.leads.score(lead.id)
    assert total == 28 and {r.reason for r in reasons} == {"came from an affiliate (1x)", "converted (1x)"}
    assert crm.contacts.get(lead.id).stage == "lead"  # 28 < 30

"""Responses feed the CRM: feedback, the published hook, detractor and promoter rules, fields, lead score."""

from __future__ import annotations

import pytest
from crmcore_surveys.service import invitation_url

from crmcore.models import Feedback
from crmcore.registry import CustomFieldSpec


@pytest.fixture
def crm_settings(smtp_settings):
    return {**smtp_settings, "plugin_settings": {"surveys": {"referral_url": "https://example.com/refer?by={contact_id}",
                                                             "quiet_days": 0}}}  # fmt: skip


def token_of(crm, invitation) -> str:
    return invitation_url(crm, invitation.id).rsplit("/", 1)[1]


def test_every_response_fires_the_hook_with_its_category(crm, service, nps, ada, hook_calls):
    token = token_of(crm, service.surveys.invite("nps", ada.id))
    service.answers.score(token, 10)
    service.answers.submit(token, {"score": 6, "why": "meh"})
    events = [call["event"] for call in hook_calls.of("crm_survey_response_recorded")]
    assert [(e.kind, e.score, e.category, e.complete, e.updated, e.contact_id) for e in events] == [
        ("nps", 10, "promoter", False, False, ada.id),
        ("nps", 6, "detractor", True, True, ada.id),
    ]
    assert "crm_feedback_recorded" in hook_calls.names()


def test_a_detractor_alerts_the_owner_once_when_ticketing_is_absent(
    crm, service, nps, run_due_jobs, smtp_server, customer
):
    owner = crm.users.add("owner@example.com", "Olga Owner")
    carl = customer(crm, "carl@example.com", first_name="Carl", owner=owner.id)
    token = token_of(crm, service.surveys.invite("nps", carl.id))
    service.answers.submit(token, {"score": 2, "why": "<b>Too slow</b>"})
    service.answers.submit(token, {"score": 1, "why": "Still slow"})
    run_due_jobs()
    [alert] = smtp_server.to("owner@example.com")
    assert alert["Subject"] == "Unhappy customer: Carl (NPS 2)"
    body = alert.get_body(("plain",)).get_content()
    assert "Why?: <b>Too slow</b>" in body and "carl@example.com" in body
    assert alert.get_body(("html",)) is None  # plain text only: nothing to inject into


def test_a_promoter_is_invited_to_refer_a_friend_once(crm, service, nps, ada, run_due_jobs, smtp_server):
    token = token_of(crm, service.surveys.invite("nps", ada.id))
    run_due_jobs()
    smtp_server.messages.clear()
    service.answers.score(token, 9)
    service.answers.submit(token, {"score": 10})
    run_due_jobs()
    [mail] = smtp_server.to("ada@example.com")
    assert f"https://example.com/refer?by={ada.id}" in mail.get_body(("plain",)).get_content()


def test_rules_can_be_turned_off_per_survey(crm, service, nps_definition, ada, run_due_jobs, smtp_server, customer):
    nps_definition["rules"] = {"detractor": "none", "promoter_referral": False}
    service.surveys.create(nps_definition)
    service.surveys.activate("nps")
    bob = customer(crm, "bob@example.com")
    service.answers.submit(token_of(crm, service.surveys.invite("nps", ada.id)), {"score": 10})
    service.answers.submit(token_of(crm, service.surveys.invite("nps", bob.id)), {"score": 0})
    smtp_server.messages.clear()
    run_due_jobs()
    assert [m["Subject"] for m in smtp_server.messages if "Unhappy" in m["Subject"] or "friend" in m["Subject"]] == []


def test_answers_feed_contact_fields_and_the_lead_score(crm, service, nps_definition, ada):
    crm.custom_fields.define(CustomFieldSpec(name="likes", label="Likes"))
    nps_definition["questions"][1]["contact_field"] = "likes"
    service.surveys.create(nps_definition)
    service.surveys.activate("nps")
    assert crm.contacts.get(ada.id).score == 0
    token = token_of(crm, service.surveys.invite("nps", ada.id))
    service.answers.submit(token, {"score": 9, "liked": ["price", "support"]})
    contact = crm.contacts.get(ada.id)
    assert contact.custom["likes"] == "price, support"
    assert contact.score == 10
    service.answers.submit(token, {"score": 3})
    assert crm.contacts.get(ada.id).score == -10


def test_a_failing_hook_rolls_the_whole_response_back(crm_factory, nps_definition, customer):
    from crmcore_surveys import surveys

    from crmcore import hookimpl
    from crmcore.errors import PluginError

    class Broken:
        @hookimpl
        def crm_survey_response_recorded(self, event, ctx):
            raise RuntimeError("analytics down")

    crm = crm_factory(plugins=["surveys", Broken()])
    service = surveys(crm)
    service.surveys.create(nps_definition)
    service.surveys.activate("nps")
    ada = customer(crm, "ada@example.com")
    token = token_of(crm, service.surveys.invite("nps", ada.id))
    with pytest.raises(PluginError, match="analytics down"):
        service.answers.submit(token, {"score": 9, "why": "great"})
    assert service.surveys.responses("nps") == []
    with crm.transaction() as ctx:
        assert ctx.session.query(Feedback).count() == 0
    assert service.surveys.invitations("nps")[0].responded is False


def test_erasing_a_contact_erases_their_words_but_keeps_the_scores(crm, service, nps, ada):
    token = token_of(crm, service.surveys.invite("nps", ada.id))
    service.answers.submit(token, {"score": 9, "why": "I am Ada, call me on 555-0100"})
    crm.contacts.erase(ada.id)
    [response] = service.surveys.responses("nps")
    assert (response.contact_id, response.score) == (None, 9)
    assert service.surveys.invitations("nps")[0].contact_id is None
    words = crm.reports.run("surveys.verbatims", params={"survey": "nps"})
    assert words.rows == []
    assert crm.reports.run("surveys.results", params={"survey": "nps"}).rows[0]["nps"] == 100.0


def test_merging_contacts_moves_their_responses(crm, service, nps, ada, customer):
    twin = customer(crm, "ada.lovelace@example.com")
    service.answers.submit(token_of(crm, service.surveys.invite("nps", twin.id)), {"score": 10})
    crm.contacts.merge(ada.id, twin.id)
    assert [r.contact_id for r in service.surveys.responses("nps")] == [ada.id]

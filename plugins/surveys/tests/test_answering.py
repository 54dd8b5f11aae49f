"""Answering through real HTTP: the page, validation, score links, bad links, closed surveys, escaping."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from crmcore_surveys import surveys
from crmcore_surveys.service import invitation_url

from crmcore.errors import Conflict, ValidationError
from crmcore.models import Feedback


@pytest.fixture
def crm_settings(smtp_settings):
    return {**smtp_settings}


@pytest.fixture
def invitation(service, nps, ada, run_due_jobs):
    found = service.surveys.invite("nps", ada.id)
    run_due_jobs()
    return found


def path(url: str) -> str:
    return urlsplit(url).path


def test_the_email_link_opens_a_mobile_friendly_page_without_script(http, crm, invitation, smtp_server):
    [mail] = smtp_server.to("ada@example.com")
    link = re.search(r"http://\S+/surveys/r/[^/\s]+\s", mail.get_body(("plain",)).get_content()).group(0).strip()
    page = http.get(path(link))
    assert page.status_code == 200
    assert 'name="viewport"' in page.text and "<script" not in page.text
    assert "How likely are you to recommend us to a friend?" in page.text
    assert page.text.count('type="radio" name="score"') == 11 and 'type="checkbox" name="liked"' in page.text
    german = http.get(path(link), params={"lang": "de"})
    assert "Wie wahrscheinlich ist es" in german.text and '<html lang="de"' in german.text
    assert ">Preis<" in german.text and ">Support<" in german.text  # an untranslated label falls back


def test_a_submit_is_stored_once_with_feedback_on_the_timeline(http, crm, service, invitation, ada):
    url = path(invitation_url(crm, invitation.id))
    sent = http.post(url, data={"score": "9", "liked": ["price", "speed"], "why": "Quick & friendly", "lang": "en"})
    assert sent.status_code == 201 and "Thank you" in sent.text
    [response] = service.surveys.responses("nps")
    assert (response.score, response.contact_id, response.complete) == (9, ada.id, True)
    with crm.transaction() as ctx:
        feedback = ctx.session.get(Feedback, response.feedback_id)
        assert (feedback.contact_id, feedback.rating, feedback.source) == (ada.id, 9, "survey:nps")
        assert "What did you like?: Price, Speed" in feedback.comment
    timeline = crm.contacts.timeline(ada.id)
    assert any(item["kind"] == "feedback" and item["text"] == "rated 9 via survey:nps" for item in timeline)
    # a second submit within the edit window updates the same response
    again = http.post(url, data={"score": "10", "why": "Even better"})
    assert again.status_code == 201
    [response] = service.surveys.responses("nps")
    assert response.score == 10
    with crm.transaction() as ctx:
        assert ctx.session.get(Feedback, response.feedback_id).rating == 10
        assert len(ctx.session.query(Feedback).all()) == 1


def test_errors_per_field_keep_what_was_typed_and_escape_html(http, crm, service, invitation):
    url = path(invitation_url(crm, invitation.id))
    bad = http.post(url, data={"score": "11", "liked": "gold", "why": "<script>alert('x')</script>"})
    assert bad.status_code == 422
    assert "give a whole number from 0 to 10" in bad.text and "choose among the options" in bad.text
    assert "<script>alert" not in bad.text and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in bad.text
    missing = http.post(url, json={"why": "no score"})
    assert missing.status_code == 422 and missing.json()["errors"] == {"score": "is required"}
    assert service.surveys.responses("nps") == []
    # stored HTML comes back escaped on the page
    assert http.post(url, data={"score": "3", "why": "<b>bold</b> & <img src=x onerror=alert(1)>"}).status_code == 201
    page = http.get(url)
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "<img src=x" not in page.text


def test_a_score_link_answers_in_one_click_and_the_page_completes_it(http, crm, service, invitation):
    one_click = http.get(path(invitation_url(crm, invitation.id, 7)))
    assert one_click.status_code == 200 and "your score is saved" in one_click.text
    assert 'value="7" checked' in one_click.text
    [response] = service.surveys.responses("nps")
    assert (response.score, response.complete) == (7, False)
    assert http.post(path(invitation_url(crm, invitation.id)), data={"score": "8", "why": "ok"}).status_code == 201
    [response] = service.surveys.responses("nps")
    assert (response.score, response.complete) == (8, True)
    out_of_range = http.get(path(invitation_url(crm, invitation.id, 11)))
    assert out_of_range.status_code == 422 and "from 0 to 10" in out_of_range.text
    assert http.get(path(invitation_url(crm, invitation.id, "x"))).status_code == 422


def test_tampered_and_expired_links_and_closed_surveys_are_refused(http, crm, service, invitation, clock):
    url = path(invitation_url(crm, invitation.id))
    tampered = http.get(url[:-3] + ("abc" if not url.endswith("abc") else "xyz"))
    assert tampered.status_code == 400 and "invalid link" in tampered.text
    forged = http.get("/surveys/r/" + crm.signer.dumps("ticketing-status", invitation.id))
    assert forged.status_code == 400
    clock.advance(days=31)
    expired = http.get(url)
    assert expired.status_code == 400 and "expired" in expired.text
    assert http.post(url, data={"score": "9"}).status_code == 400
    clock.advance(days=-31)
    service.surveys.close("nps")
    closed = http.post(url, data={"score": "9"})
    assert closed.status_code == 410 and "closed" in closed.text
    assert http.get(path(invitation_url(crm, invitation.id, 9))).status_code == 410
    assert service.surveys.responses("nps") == []


def test_refuse_mode_and_the_edit_window(crm, service, nps_definition, ada, clock, customer):
    nps_definition.update(key="strict", resubmit="refuse")
    service.surveys.create(nps_definition)
    service.surveys.activate("strict")
    token = invitation_url(crm, service.surveys.invite("strict", ada.id).id).rsplit("/", 1)[1]
    service.answers.submit(token, {"score": 5})
    with pytest.raises(Conflict, match="already answered"):
        service.answers.submit(token, {"score": 6})
    with pytest.raises(Conflict, match="already answered"):
        service.answers.score(token, 6)
    assert service.answers.page(token)["locked"] is True
    nps_definition.update(key="window", resubmit="update", edit_window="1h")
    service.surveys.create(nps_definition)
    service.surveys.activate("window")
    bob = customer(crm, "bob@example.com")
    token = invitation_url(crm, service.surveys.invite("window", bob.id).id).rsplit("/", 1)[1]
    service.answers.submit(token, {"score": 5})
    clock.advance(minutes=59)
    assert service.answers.submit(token, {"score": 6}).score == 6
    clock.advance(minutes=2)
    with pytest.raises(Conflict, match="can no longer be changed"):
        service.answers.submit(token, {"score": 7})


def test_anonymous_surveys_store_no_contact(crm, service, nps_definition, ada):
    nps_definition.update(key="anon", anonymous=True)
    service.surveys.create(nps_definition)
    service.surveys.activate("anon")
    token = invitation_url(crm, service.surveys.invite("anon", ada.id).id).rsplit("/", 1)[1]
    service.answers.submit(token, {"score": 2, "why": "slow"})
    [response] = service.surveys.responses("anon")
    assert (response.contact_id, response.invitation_id, response.subject_kind) == (None, None, None)
    assert response.invitation_hash and len(response.invitation_hash) == 64
    with crm.transaction() as ctx:
        feedback = ctx.session.get(Feedback, response.feedback_id)
        assert feedback.contact_id is None and feedback.rating == 2
    service.answers.submit(token, {"score": 3})
    assert len(service.surveys.responses("anon")) == 1
    with pytest.raises(ValidationError):
        service.answers.submit(token, {"score": "3.5"})


def test_a_rotated_secret_key_does_not_open_a_second_anonymous_response(crm_factory, nps_definition, customer):
    from crmcore.crm import CRM

    old = crm_factory(plugins=["surveys"], secret_key="the-old-secret-key-0001")
    nps_definition.update(key="anon", anonymous=True)
    surveys(old).surveys.create(nps_definition)
    surveys(old).surveys.activate("anon")
    invitation = surveys(old).surveys.invite("anon", customer(old, "ada@example.com").id)
    old_token = invitation_url(old, invitation.id).rsplit("/", 1)[1]
    surveys(old).answers.submit(old_token, {"score": 2})

    def rotated(key: str, *old_keys: str) -> CRM:
        return CRM(engine=old.engine, plugins=["surveys"], environment="test", clock=old.clock,
                   secret_key=key, old_secret_keys=old_keys)  # fmt: skip

    # the old key is still accepted: the same response is found and changed, not a second one added
    during = rotated("the-new-secret-key-0002", "the-old-secret-key-0001")
    assert surveys(during).answers.submit(old_token, {"score": 3}).score == 3
    assert [r.score for r in surveys(during).surveys.responses("anon")] == [3]
    # once the key it was hashed with is gone, a link signed with a newer key (a reminder) cannot answer again
    after = rotated("the-third-secret-key-0003")
    new_token = invitation_url(after, invitation.id).rsplit("/", 1)[1]
    assert surveys(after).answers.page(new_token)["locked"] is True
    with pytest.raises(Conflict, match="already answered"):
        surveys(after).answers.submit(new_token, {"score": 10})
    assert [r.score for r in surveys(after).surveys.responses("anon")] == [3]


def test_an_answered_refuse_mode_survey_says_so_instead_of_showing_the_form(http, crm, service, nps_definition, ada):
    nps_definition.update(key="once", resubmit="refuse")
    service.surveys.create(nps_definition)
    service.surveys.activate("once")
    url = path(invitation_url(crm, service.surveys.invite("once", ada.id).id))
    assert http.post(url, data={"score": "10"}).status_code == 201
    page = http.get(url)
    assert page.status_code == 200 and "already answered" in page.text and "<form" not in page.text
    again = http.post(url, data={"score": "1"})
    assert again.status_code == 409 and "already answered" in again.text
    assert [r.score for r in service.surveys.responses("once")] == [10]

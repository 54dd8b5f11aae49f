"""The consent ledger: grants with proof, withdrawals kept in history, flags, double opt-in."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.models import Contact
from crmcore.signing import InvalidToken

pytestmark = pytest.mark.databases("sqlite", "postgresql", "mariadb")


@pytest.fixture
def crm_settings(smtp_settings):
    return {**smtp_settings, "base_url": "https://crm.example.com"}


def _ada(crm, email="ada@example.com"):
    return crm.contacts.add(email=email, first_name="Ada")


def test_grant_records_proof_and_has_answers(crm):
    ada = _ada(crm)
    assert not crm.consent.has(ada.id, "marketing", "email")
    crm.consent.grant(ada.id, "marketing", "email", source="phone call", ip="203.0.113.9",
                      form_version="v3", text="Yes, send me the newsletter.")  # fmt: skip
    assert crm.consent.has(ada.id, "marketing", "email")
    assert not crm.consent.has(ada.id, "marketing", "sms")
    [state] = crm.consent.status("ada@example.com")
    assert state["status"] == "granted"
    assert (state["source"], state["ip"], state["form_version"]) == ("phone call", "203.0.113.9", "v3")
    assert state["text"] == "Yes, send me the newsletter."
    assert state["changed_at"] == crm.clock.now()


def test_withdrawal_keeps_the_grant_in_history(crm, clock):
    ada = _ada(crm)
    crm.consent.grant(ada.id, "surveys", "sms", source="form:signup", ip="2001:db8::1")
    clock.advance(timedelta(days=3))
    crm.consent.withdraw(ada.id, "surveys", "sms", source="sms STOP")
    assert not crm.consent.has(ada.id, "surveys", "sms")
    history = crm.consent.history(ada.id)
    assert [(h["action"], h["source"], h["ip"]) for h in history] == [
        ("granted", "form:signup", "2001:db8::1"),
        ("withdrawn", "sms STOP", None),
    ]
    assert history[1]["occurred_at"] - history[0]["occurred_at"] == timedelta(days=3)


def test_consented_is_sql_and_applies_the_flags(crm):
    ids = [_ada(crm, f"p{i}@example.com").id for i in range(4)]
    for contact_id in ids:
        crm.consent.grant(contact_id, "marketing", "email", source="import")
        crm.consent.grant(contact_id, "tracking", "web", source="cookie banner")
    crm.contacts.update(ids[1], do_not_contact=True)
    crm.contacts.update(ids[2], do_not_track=True)
    crm.consent.withdraw(ids[3], "marketing", "email", source="unsubscribe link")
    with crm.transaction(readonly=True) as ctx:
        marketing = set(ctx.session.scalars(crm.consent.consented("marketing", "email")))
        tracking = set(ctx.session.scalars(crm.consent.consented("tracking", "web")))
        # a join: the query is usable as a subquery in the caller's statement
        emails = set(ctx.session.scalars(
            select(Contact.email).where(Contact.id.in_(crm.consent.consented("marketing", "email")))
        ))  # fmt: skip
    # do-not-contact stops marketing but not tracking; do-not-track the reverse
    assert marketing == {ids[0], ids[2]}
    assert tracking == {ids[0], ids[1], ids[3]}
    assert emails == {"p0@example.com", "p2@example.com"}


def test_bad_purpose_channel_and_proof_are_refused(crm):
    ada = _ada(crm)
    with pytest.raises(ValidationError) as error:
        crm.consent.grant(ada.id, "spam", "pigeon", source="x")
    assert "marketing" in error.value.errors["purpose"] and "email" in error.value.errors["channel"]
    with pytest.raises(ValidationError, match="ip"):
        crm.consent.grant(ada.id, "marketing", "email", source="x", ip="not-an-ip")
    with pytest.raises(ValidationError, match="source"):
        crm.consent.grant(ada.id, "marketing", "email", source="  ")
    with pytest.raises(NotFound):
        crm.consent.grant(999_999, "marketing", "email", source="x")
    assert crm.consent.history(ada.id) == []


def test_erase_keeps_the_ledger_without_the_ip(crm):
    ada = _ada(crm)
    crm.consent.grant(ada.id, "marketing", "email", source="form:signup", ip="203.0.113.9")
    crm.contacts.erase(ada.id)
    [entry] = crm.consent.history(ada.id)
    assert (entry["action"], entry["ip"]) == ("granted", None)
    assert not crm.consent.has(ada.id, "marketing", "email")  # erased people are never targeted
    with pytest.raises(Conflict):
        crm.consent.grant(ada.id, "marketing", "email", source="x")


def test_merge_moves_the_ledger_and_the_latest_change_wins(crm, clock):
    a, b = _ada(crm, "a@example.com"), _ada(crm, "b@example.com")
    crm.consent.grant(a.id, "marketing", "email", source="first")
    clock.advance(timedelta(hours=1))
    crm.consent.withdraw(b.id, "marketing", "email", source="later unsubscribe")
    crm.consent.grant(b.id, "surveys", "email", source="survey form")
    crm.contacts.merge(a.id, b.id)
    assert not crm.consent.has(a.id, "marketing", "email")
    assert crm.consent.has(a.id, "surveys", "email")
    assert len(crm.consent.history(a.id)) == 3


def _form_consent(crm, contact_id, purposes=("marketing",), ip="198.51.100.7"):
    with crm.transaction() as ctx:
        ctx.call("crm_form_consent_given", contact_id=contact_id, form_slug="newsletter", purposes=list(purposes),
                 proof={"at": ctx.now, "ip": ip, "source": "form:newsletter", "form_version": "2026-01",
                        "text": "Send me news."})  # fmt: skip


def _link(message):
    return re.search(r"https://crm\.example\.com(/consent/confirm/\S+)", message.get_content()).group(1)


def test_double_opt_in_grants_only_after_the_click(crm, smtp_server, run_due_jobs, http):
    ada = _ada(crm)
    _form_consent(crm, ada.id, ["marketing", "surveys:email"])
    assert not crm.consent.has(ada.id, "marketing", "email")
    assert {s["status"] for s in crm.consent.status(ada.id)} == {"pending"}
    run_due_jobs()
    [mail] = smtp_server.to("ada@example.com")
    path = _link(mail)
    page = http.get(path)  # a mail scanner prefetching the link confirms nothing
    assert page.status_code == 200 and "Yes, confirm" in page.text
    assert not crm.consent.has(ada.id, "marketing", "email")
    done = http.post(path)
    assert done.status_code == 200 and "confirmed" in done.text
    assert crm.consent.has(ada.id, "marketing", "email") and crm.consent.has(ada.id, "surveys", "email")
    assert http.post(path).status_code == 200  # a second click is harmless
    actions = [(h["action"], h["source"], h["ip"]) for h in crm.consent.history(ada.id)]
    assert actions[:2] == [("requested", "form:newsletter", "198.51.100.7")] * 2
    assert actions[2:] == [("confirmed", "double-opt-in:form:newsletter", "127.0.0.1")] * 2


def test_a_link_confirms_its_own_address_only(crm, smtp_server, run_due_jobs, http):
    ada, bob = _ada(crm), _ada(crm, "bob@example.com")
    _form_consent(crm, ada.id)
    _form_consent(crm, bob.id)
    run_due_jobs()
    ada_path = _link(smtp_server.to("ada@example.com")[0])
    token = ada_path.rsplit("/", 1)[1]
    # A token re-signed by someone without the secret, or pointed at Bob's request, is refused.
    payload = crm.signer.loads("consent-confirm", token)
    forged = crm.signer.dumps("consent-confirm", {**payload, "e": "bob@example.com"})
    with pytest.raises(InvalidToken):
        crm.consent.confirm(forged)
    other_request = crm.signer.dumps("consent-confirm", {**payload, "r": payload["r"] + 1})
    with pytest.raises(InvalidToken):
        crm.consent.confirm(other_request)
    assert http.post(ada_path[:-3] + "xyz").status_code == 400
    assert not crm.consent.has(bob.id, "marketing", "email")
    # An address changed after the form was sent: the old link no longer confirms.
    crm.contacts.update(ada.id, email="ada.new@example.com")
    response = http.post(ada_path)
    assert response.status_code == 400 and not crm.consent.has(ada.id, "marketing", "email")


def test_expired_link_and_no_second_mail_once_granted(crm, clock, smtp_server, run_due_jobs):
    ada = _ada(crm)
    _form_consent(crm, ada.id)
    run_due_jobs()
    token = _link(smtp_server.to("ada@example.com")[0]).rsplit("/", 1)[1]
    clock.advance(timedelta(days=15))
    with pytest.raises(InvalidToken, match="expired"):
        crm.consent.confirm(token)
    crm.consent.grant(ada.id, "marketing", "email", source="rep on the phone")
    _form_consent(crm, ada.id)  # already granted: no pending, no second mail
    run_due_jobs()
    assert len(smtp_server.to("ada@example.com")) == 1
    assert crm.consent.has(ada.id, "marketing", "email")


def test_form_consent_with_bad_purpose_rolls_back(crm, run_due_jobs, smtp_server):
    ada = _ada(crm)
    with pytest.raises(ValidationError, match="purpose"):
        _form_consent(crm, ada.id, ["marketing", "astrology"])
    run_due_jobs()
    assert crm.consent.history(ada.id) == [] and smtp_server.messages == []


def test_consent_and_segment_tables_migrate_to_the_models_schema(crm):
    from crmcore.migrate import branch_heads, schema_diff

    assert len(branch_heads(crm, "core")) == 1
    assert schema_diff(crm) == []


def test_web_form_consent_goes_through_double_opt_in(crm, http, smtp_server, run_due_jobs):
    crm.forms.create("news", title="Newsletter", fields=[{"name": "email", "type": "email", "required": True}],
                     consent_text="Send me the monthly newsletter.", consent_purposes=["marketing"])  # fmt: skip
    posted = http.post("/forms/news", data={"email": "ada@example.com", "consent": "on"}, follow_redirects=False)
    assert posted.status_code in (200, 303)
    ada = crm.contacts.get("ada@example.com")
    [pending] = crm.consent.status(ada.id)
    assert (pending["status"], pending["source"], pending["text"]) == (
        "pending", "form:news", "Send me the monthly newsletter.")
    assert not crm.consent.has(ada.id, "marketing", "email")
    run_due_jobs()
    path = _link(smtp_server.to("ada@example.com")[0])
    assert http.post(path).status_code == 200
    assert crm.consent.has(ada.id, "marketing", "email")


def test_a_form_with_purposes_the_ledger_does_not_know_is_refused_when_created(crm):
    with pytest.raises(ValidationError) as error:
        crm.forms.create("odd", title="Odd", fields=[{"name": "email", "type": "email"}],
                         consent_text="Yes", consent_purposes=["newsletter"])  # fmt: skip
    assert "purposes: marketing" in error.value.errors["consent_purposes"]


def test_consent_from_a_form_without_email_stays_pending_with_its_proof(crm, run_due_jobs, smtp_server):
    bob = crm.contacts.add(phone="+1 212 555 0100", first_name="Bob")
    _form_consent(crm, bob.id, ["marketing:sms"])
    run_due_jobs()
    assert smtp_server.messages == []
    [state] = crm.consent.status(bob.id)
    assert (state["channel"], state["status"], state["ip"]) == ("sms", "pending", "198.51.100.7")
    assert not crm.consent.has(bob.id, "marketing", "sms")

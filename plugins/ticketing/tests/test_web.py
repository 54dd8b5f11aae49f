"""The web pages, against a real uvicorn and a real SMTP server: support form, status page, articles."""

from __future__ import annotations

import re
from typing import Any

import pytest


@pytest.fixture
def crm_settings(ticketing_settings: dict[str, Any], smtp_settings: dict[str, Any]) -> dict[str, Any]:
    return {"plugin_settings": {"ticketing": ticketing_settings}, **smtp_settings}


def test_the_support_form_opens_a_ticket_and_mails_the_tracking_number(http, support, smtp_server, run_due_jobs):
    page = http.get("/ticketing/support")
    assert page.status_code == 200 and 'name="subject"' in page.text
    sent = http.post("/ticketing/support", data={"name": "Ada Lovelace", "email": "ada@example.com",
                                                 "subject": "Engine stuck", "message": "It stopped at step 3.",
                                                 "category": "incident"})  # fmt: skip
    assert sent.status_code == 201
    number = re.search(r"TK-[0-9A-Z]{4}-[0-9A-Z]{4}", sent.text).group(0)
    ticket = support.tickets.get(number)
    assert (ticket.channel, ticket.category, ticket.subject) == ("web", "incident", "Engine stuck")
    run_due_jobs()
    [mail] = smtp_server.to("ada@example.com")
    assert number in mail["Subject"] and number in mail.get_body(("plain",)).get_content()


def test_the_support_form_shows_every_error_and_keeps_what_was_typed(http, support):
    answer = http.post("/ticketing/support", data={"email": "not-an-email", "subject": "", "message": "Hello"})
    assert answer.status_code == 422
    assert "is required" in answer.text and "Hello</textarea>" in answer.text
    api = http.post("/ticketing/support", json={"email": "ada@example.com", "subject": "S", "message": ""})
    assert api.status_code == 422 and api.json()["errors"] == {"message": "is required"}
    assert support.tickets.list() == []


def test_a_customer_sees_the_status_after_proving_their_email(http, support, agent, smtp_server, run_due_jobs):
    ticket = support.tickets.open(
        subject="Engine stuck", body="It stopped.", requester="ada@example.com", channel="web"
    )
    support.tickets.reply(ticket.number, "We are replacing the gear.", status="pending", actor=agent.email)
    support.tickets.note(ticket.number, "Gear costs 300 EUR, do not tell", actor=agent.email)
    run_due_jobs()
    smtp_server.messages.clear()
    # a wrong address gets the same answer and no mail
    wrong = http.post("/ticketing/status", data={"number": ticket.number, "email": "eve@example.com"})
    right = http.post("/ticketing/status", data={"number": ticket.number.lower(), "email": "ADA@example.com"})
    assert wrong.status_code == right.status_code == 202 and wrong.text == right.text
    run_due_jobs()
    [mail] = smtp_server.messages
    assert mail["To"] == "ada@example.com"
    link = re.search(r"http://\S+/ticketing/status/(\S+)", mail.get_body(("plain",)).get_content())
    page = http.get(f"/ticketing/status/{link.group(1)}")
    assert page.status_code == 200
    assert ticket.number in page.text and "pending" in page.text and "We are replacing the gear." in page.text
    assert "do not tell" not in page.text
    tampered = http.get(f"/ticketing/status/{link.group(1)[:-2]}xx")
    assert tampered.status_code == 400 and "invalid link" in tampered.text


def test_a_status_link_expires(http, support, smtp_server, run_due_jobs, clock, crm):
    ticket = support.tickets.open(subject="Old", body="...", requester="ada@example.com")
    token = crm.signer.dumps("ticketing-status", {"t": ticket.id, "e": "ada@example.com"})
    assert http.get(f"/ticketing/status/{token}").status_code == 200
    clock.advance(days=8)
    expired = http.get(f"/ticketing/status/{token}")
    assert expired.status_code == 400 and "expired" in expired.text


def test_published_articles_have_a_public_page_with_helpful_votes(http, support):
    article = support.kb.add("Reset your password", "Open Settings <b>then</b> Security.", publish=True)
    draft = support.kb.add("Unreleased feature", "Secret")
    page = http.get(f"/ticketing/kb/{article.slug}")
    assert page.status_code == 200 and "Open Settings &lt;b&gt;then&lt;/b&gt; Security." in page.text
    assert http.get(f"/ticketing/kb/{draft.slug}").status_code == 404
    voted = http.post(f"/ticketing/kb/{article.slug}/vote", data={"helpful": "yes"}, follow_redirects=False)
    assert voted.status_code == 303 and voted.headers["location"].endswith("?voted=1")
    assert http.post(f"/ticketing/kb/{article.slug}/vote", json={"helpful": "no"}).json() == {
        "helpful_yes": 1, "helpful_no": 1}  # fmt: skip
    assert http.post(f"/ticketing/kb/{article.slug}/vote", data={"helpful": "maybe"}).status_code == 422
    index = http.get("/ticketing/kb", params={"q": "password"})
    assert article.slug in index.text and draft.slug not in index.text

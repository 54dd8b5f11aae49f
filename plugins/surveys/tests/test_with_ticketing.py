"""With ticketing installed: a solved ticket sends the CSAT survey, a detractor opens a ticket."""

from __future__ import annotations

from datetime import timedelta

import pytest
from crmcore_surveys import surveys
from crmcore_surveys.service import invitation_url
from crmcore_ticketing import ticketing

from crmcore.models import Feedback


@pytest.fixture
def crm_plugins():
    return ["surveys", "ticketing"]


@pytest.fixture
def crm_settings(tmp_path):
    return {"mail_dir": str(tmp_path / "mail"),
            "plugin_settings": {"ticketing": {"attachment_dir": str(tmp_path / "files")}}}  # fmt: skip


def test_a_solved_ticket_sends_the_survey_and_a_detractor_opens_a_ticket(crm, data, clock, run_due_jobs):
    service, support = surveys(crm), ticketing(crm)
    service.surveys.create(data / "support-csat.yaml")
    service.surveys.activate("support-csat")
    agent = crm.users.add("agent@example.com", "Alex Agent", role="agent")
    ticket = support.tickets.open(subject="Printer", body="Broken", requester="ada@example.com", product="P-100",
                                  channel="phone", assignee=agent.id, by_agent=False)  # fmt: skip
    crm.consent.grant(ticket.requester_id, "surveys", "email", source="phone call", text="Ask me how it went.")
    support.tickets.reply(ticket.number, "Fixed it.", status="solved", actor=agent.email)
    [invitation] = service.surveys.invitations("support-csat")
    assert (invitation.subject_kind, invitation.subject_id, invitation.agent_id, invitation.product,
            invitation.channel) == ("ticket", ticket.id, agent.id, "P-100", "phone")  # fmt: skip
    assert invitation.send_at == clock.now() + timedelta(hours=2)
    clock.advance(hours=2)
    run_due_jobs()
    token = invitation_url(crm, invitation.id).rsplit("/", 1)[1]
    response = service.answers.submit(token, {"score": 1, "fast": "no", "why": "Took a week"})
    with crm.transaction() as ctx:
        feedback = ctx.session.get(Feedback, response.feedback_id)
        assert (feedback.subject_kind, feedback.subject_id, feedback.rating) == ("ticket", ticket.id, 1)
    complaints = [t for t in support.tickets.list(requester=ticket.requester_id) if t.id != ticket.id]
    [complaint] = complaints
    assert complaint.category == "complaint" and set(complaint.tags) >= {"survey", "detractor"}
    assert "CSAT 1" in complaint.subject and complaint.product == "P-100"
    body = support.tickets.messages(complaint.number)[0].body
    assert "Took a week" in body and f"ticket {ticket.id}" in body
    # answering again within the window does not open a second ticket
    service.answers.submit(token, {"score": 2})
    assert len(support.tickets.list(requester=ticket.requester_id)) == 2

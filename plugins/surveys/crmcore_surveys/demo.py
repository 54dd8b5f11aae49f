"""Surveys' part of ``crm demo``: buyers (and, with ticketing, people whose ticket was solved) are asked.

On the first day an NPS survey after purchases and, with ticketing, a CSAT
survey after solved tickets are created and activated. New leads agree to
surveys more often than not; every day some of the invitations already
emailed get an answer, from the email's score link or the page, some with a
comment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crmcore_surveys.models import Invitation

if TYPE_CHECKING:
    from crmcore.demo.simulation import DemoDay

NPS: dict[str, Any] = {
    "key": "customer-nps", "title": "Would you recommend us?",
    "intro": "Thank you for your order. One question, ten seconds.",
    "questions": [
        {"key": "score", "kind": "nps", "required": True, "text": "How likely are you to recommend us to a friend?"},
        {"key": "why", "kind": "text", "text": "What is the main reason for your score?"},
    ],
    "triggers": [{"hook": "crm_purchase_recorded", "delay": "2d", "sample": "50%"}],
}  # fmt: skip
CSAT: dict[str, Any] = {
    "key": "support-csat", "title": "How did we do?",
    "questions": [
        {"key": "score", "kind": "csat", "required": True, "text": "How satisfied are you with our support?"},
        {"key": "why", "kind": "text", "text": "What could we do better?"},
    ],
    "triggers": [{"hook": "crm_ticket_solved", "delay": "1h"}],
}  # fmt: skip
COMMENTS = {
    "detractor": ["Delivery took far too long.", "Support never called back.", "Too expensive for what it does."],
    "passive": ["Fine, nothing special.", "Good, but the app is slow.", "OK."],
    "promoter": ["Great product, fast delivery!", "Your support team is wonderful.", "Exactly what we needed."],
}


def simulate(day: DemoDay) -> None:
    """Set the surveys up on the first day; then consents, and answers to invitations already sent."""
    from crmcore_surveys import surveys
    from crmcore_surveys.definition import SCALES, category
    from crmcore_surveys.service import invitation_token

    crm, rng = day.crm, day.rng
    service = surveys(crm)
    if day.first:
        for definition in (NPS, CSAT) if crm.plugins.is_enabled("ticketing") else (NPS,):
            service.surveys.create(definition)
            service.surveys.activate(definition["key"])
    day.at(10)
    for contact_id in day.leads:
        if rng.random() < 0.6:
            crm.consent.grant(contact_id, "surveys", "email", source="demo:signup form")
    with crm.transaction(readonly=True) as ctx:
        waiting = list(ctx.session.scalars(
            select(Invitation).where(Invitation.status == "sent", Invitation.responded.is_(False))
            .order_by(Invitation.id)))  # fmt: skip
        kinds = {i.id: service.surveys.get(i.survey_id).headline_kind for i in waiting}
    day.at(18)
    for invitation in waiting:
        if rng.random() > 0.35:
            continue
        kind = kinds[invitation.id] or "nps"
        low, high = SCALES[kind]
        score = min(high, max(low, round(rng.triangular(low, high, high - (high - low) * 0.15))))
        token = invitation_token(crm, invitation.id)
        if rng.random() < 0.5:
            service.answers.score(token, score)
        else:
            comment = rng.choice(COMMENTS[category(kind, score) or "passive"]) if rng.random() < 0.6 else None
            service.answers.submit(token, {"score": score, "why": comment})
        day.count("survey answers")

"""Job handlers: sending an invitation's email when it is due."""

from __future__ import annotations

from typing import Any

from crmcore.mail import MailMessage, queue_mail
from crmcore.models import Contact
from crmcore.registry import JobCall, JobHandler, PeriodicJob
from crmcore_surveys import definition as definitions
from crmcore_surveys import rollup
from crmcore_surveys.models import Invitation, Survey, SurveyState
from crmcore_surveys.service import SEND_HANDLER, has_consent, invitation_url, setting


def send_invitation_job(call: JobCall) -> None:
    """Email one due invitation, or mark it skipped (survey not active, consent gone, contact erased).

    Runs once per invitation (its status moves from ``scheduled``); the email
    itself is queued in the same transaction with the invitation's key, so a
    retried job never sends twice.
    """
    with call.crm.transaction() as ctx:
        invitation = ctx.session.get(Invitation, int(call.payload["invitation_id"]))
        if invitation is None or invitation.status != "scheduled":
            return
        survey = ctx.session.get(Survey, invitation.survey_id)
        contact = ctx.session.get(Contact, invitation.contact_id) if invitation.contact_id else None
        reason = None
        if survey is None or survey.state != SurveyState.ACTIVE:
            reason = "survey not active"
        elif contact is None or not has_consent(ctx, contact):
            reason = "no consent or no email"
        if reason is not None or survey is None or contact is None or not contact.email:
            invitation.status, invitation.skip_reason = "skipped", reason or "no email"
            return
        queue_mail(ctx, invitation_message(ctx.crm, survey, invitation, contact),
                   key=f"surveys:invitation:{invitation.id}")  # fmt: skip
        before = rollup.snapshot(ctx.session, invitation)
        invitation.status, invitation.sent_at = "sent", ctx.now
        rollup.record(ctx.session, before, invitation)


def invitation_message(crm: Any, survey: Survey, invitation: Invitation, contact: Contact) -> MailMessage:
    """The invitation email: the survey's intro, one link per score of the headline question, the page link."""
    data = survey.definition
    language = invitation.language or contact.language
    head = definitions.headline(data)
    scores = []
    if head is not None and head["kind"] in ("nps", "csat"):
        low, high = definitions.SCALES[head["kind"]]
        scores = [{"score": n, "url": invitation_url(crm, invitation.id, n)} for n in range(low, high + 1)]
    context = {
        "survey": survey, "contact": contact, "language": language,
        "title": definitions.translate(data["title"], language, data["default_language"]),
        "intro": definitions.translate(data.get("intro"), language, data["default_language"]),
        "question": definitions.translate(head["text"], language, data["default_language"]) if head else "",
        "scores": scores, "url": invitation_url(crm, invitation.id), "kind": head["kind"] if head else None,
        "days": data["link_days"],
    }  # fmt: skip
    subject = definitions.translate(data.get("email_subject"), language, data["default_language"]) or context["title"]
    return MailMessage(
        to=contact.email or "",
        subject=subject,
        text=crm.templates.get_template("surveys/invitation.txt").render(**context),
        html=crm.templates.get_template("surveys/invitation.html").render(**context),
        sender=setting(crm, "sender"),
    )


def registrations() -> list[JobHandler | PeriodicJob]:
    """The plugin's job handlers."""
    return [JobHandler(name=SEND_HANDLER, func=send_invitation_job, batch=True, help="email a due survey invitation")]

"""The shipped rules on every response, and the lead-score contribution of survey answers.

* **Detractor** (NPS 0-6, CSAT 1-2, CES 1-3): open a ticket for the contact
  when ticketing is enabled, else email an alert to the contact's owner (or
  the ``alert_address``). Setting ``detractor_action`` (``auto``, ``ticket``,
  ``alert``, ``none``), overridable per survey in ``rules.detractor``.
* **Promoter** (NPS 9-10, CSAT 4-5, CES 5-7): email a refer-a-friend invitation
  to the ``referral_url`` setting (off while unset; ``rules.promoter_referral:
  false`` turns it off for one survey).

Each rule runs once per response (an updated answer never opens a second
ticket); anonymous responses trigger neither, since nobody can be contacted.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import TYPE_CHECKING

from sqlalchemy import select

from crmcore.errors import ConfigError
from crmcore.events import ScoreContribution
from crmcore.i18n import N_
from crmcore.mail import MailMessage, queue_mail
from crmcore.models import Contact, User
from crmcore_surveys import definition as definitions
from crmcore_surveys.answering import summary
from crmcore_surveys.models import Answer, Survey, SurveyResponse
from crmcore_surveys.service import has_consent, setting

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore_surveys.events import SurveyResponseRecorded


def apply_rules(event: SurveyResponseRecorded, ctx: HookContext) -> None:
    """Run the detractor and promoter rules for a response, once each."""
    if event.contact_id is None or event.category not in ("detractor", "promoter"):
        return
    response = ctx.session.get(SurveyResponse, event.response_id)
    survey = ctx.session.get(Survey, event.survey_id)
    contact = ctx.session.get(Contact, event.contact_id)
    if response is None or survey is None or contact is None or event.category in (response.actions or []):
        return
    rules = survey.definition.get("rules") or {}
    done = False
    if event.category == "detractor":
        done = _detractor(ctx, survey, response, contact, rules.get("detractor") or setting(ctx, "detractor_action"))
    elif rules.get("promoter_referral", True):
        done = _promoter(ctx, survey, response, contact)
    if done:
        response.actions = [*(response.actions or []), event.category]


def _answers_text(ctx: HookContext, survey: Survey, response: SurveyResponse) -> str:
    from crmcore_surveys.answering import _answers_of

    rows = list(ctx.session.scalars(select(Answer).where(Answer.response_id == response.id)))
    return summary(survey, _answers_of(survey, rows), response.language)


def _detractor(ctx: HookContext, survey: Survey, response: SurveyResponse, contact: Contact, action: str) -> bool:
    if action == "none":
        return False
    ticketing_on = ctx.crm.plugins.is_enabled("ticketing")
    if action == "auto":
        action = "ticket" if ticketing_on else "alert"
    label = (survey.headline_kind or "").upper()
    about = f" about {response.subject_kind} {response.subject_id}" if response.subject_kind else ""
    body = (f"{contact.name} answered the survey {survey.title!r} with {label} {response.score}{about}.\n\n"
            f"{_answers_text(ctx, survey, response)}")  # fmt: skip
    if action == "ticket":
        if not ticketing_on:
            raise ConfigError("surveys: detractor_action is 'ticket' but the ticketing plugin is not enabled")
        from crmcore_ticketing import ticketing  # type: ignore[import-not-found,unused-ignore]

        ticket = ticketing(ctx.crm).tickets.open(
            subject=f"Unhappy survey answer: {survey.title} ({label} {response.score})"[:255], body=body,
            requester=contact.id, channel="api", category="complaint", product=response.product,
            tags=["survey", "detractor"], by_agent=False,
        )  # fmt: skip
        ctx.audit("survey.detractor_ticket", "survey", survey.id, {"response_id": response.id, "ticket": ticket.number})
        return True
    owner = ctx.session.get(User, contact.owner_id) if contact.owner_id else None
    recipient = owner.email if owner is not None else (setting(ctx, "alert_address") or
                                                       parseaddr(ctx.crm.settings.mail_from)[1])  # fmt: skip
    text = ctx.crm.templates.get_template("surveys/detractor_alert.txt").render(
        contact=contact, survey=survey, response=response, body=body
    )
    queue_mail(ctx, MailMessage(to=recipient, subject=f"Unhappy customer: {contact.name} ({label} {response.score})",
                                text=text, sender=setting(ctx, "sender")),
               key=f"surveys:detractor:{response.id}")  # fmt: skip
    return True


def _promoter(ctx: HookContext, survey: Survey, response: SurveyResponse, contact: Contact) -> bool:
    url = setting(ctx, "referral_url")
    if not url or not has_consent(ctx, contact):
        return False
    data = survey.definition
    text = ctx.crm.templates.get_template("surveys/referral.txt").render(
        contact=contact, survey=survey, url=str(url).replace("{contact_id}", str(contact.id)),
        title=definitions.translate(data["title"], response.language, data["default_language"]),
    )  # fmt: skip
    queue_mail(ctx, MailMessage(to=contact.email or "", subject="Thank you! Would you tell a friend?", text=text,
                                sender=setting(ctx, "sender")),
               key=f"surveys:referral:{response.id}")  # fmt: skip
    return True


#: The plugin's name where the console shows a score's source, and the reason of its points.
PLUGIN_NAME = N_("surveys")
SCORE_REASON = N_("survey %(survey)s: %(kind)s %(score)s (%(category)s)")


def score_contributions(contact: Contact, ctx: HookContext) -> list[ScoreContribution]:
    """Points for the contact's latest headline answer (promoter up, detractor down)."""
    if contact.id is None:
        return []
    latest = ctx.session.execute(
        select(SurveyResponse.score, Survey.headline_kind, Survey.key)
        .join(Survey, Survey.id == SurveyResponse.survey_id)
        .where(SurveyResponse.contact_id == contact.id, SurveyResponse.score.is_not(None))
        .order_by(SurveyResponse.updated_at.desc(), SurveyResponse.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        return []
    score, kind, key = latest
    found = definitions.category(kind, score)
    if found == "promoter":
        points = int(setting(ctx, "score_promoter"))
    elif found == "detractor":
        points = int(setting(ctx, "score_detractor"))
    else:
        return []
    if not points:
        return []
    values = {"survey": key, "kind": (kind or "").upper(), "score": score}
    return [ScoreContribution(points=points, reason=SCORE_REASON % {**values, "category": found}, message=SCORE_REASON,
                              values=values, terms={"category": found})]  # fmt: skip

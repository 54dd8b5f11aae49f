"""Answering: the invitation's page and the email's score links store one response per invitation.

A link carries a signed token (``crm.signer``, purpose ``surveys-invitation``)
that expires after the survey's ``link_days``. A second submit updates the
response within the survey's ``edit_window`` when ``resubmit`` is ``update``,
and is refused otherwise; the answers of a score link can always be completed
on the page. Every response becomes customer feedback on the contact's
timeline (linked to the ticket, purchase or campaign that triggered it), fires
``crm_survey_response_recorded`` and may write answers to contact fields.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from crmcore.errors import Conflict, CRMError, NotFound, ValidationError
from crmcore.models import Contact, Feedback
from crmcore.services.base import Service, rescore
from crmcore.validation import clean_text
from crmcore_surveys import definition as definitions
from crmcore_surveys import rollup
from crmcore_surveys.events import SurveyResponseRecorded
from crmcore_surveys.models import Answer, Invitation, Survey, SurveyResponse, SurveyState
from crmcore_surveys.service import INVITATION_PURPOSE

if TYPE_CHECKING:
    from crmcore.context import HookContext

log = logging.getLogger("crmcore.surveys")
MAX_ANSWER_TEXT = 5000


class SurveyClosed(CRMError):
    """The survey no longer takes answers."""

    http_status = 410


def open_invitation(ctx: HookContext, token: str) -> tuple[Invitation, Survey]:
    """The invitation and survey of a link's token; InvalidToken when tampered or expired."""
    from crmcore.signing import InvalidToken

    invitation_id = ctx.crm.signer.loads(INVITATION_PURPOSE, token)
    invitation = ctx.session.get(Invitation, int(invitation_id)) if isinstance(invitation_id, int) else None
    if invitation is None:
        raise NotFound("this survey link is not known")
    survey = ctx.session.get(Survey, invitation.survey_id)
    if survey is None:
        raise NotFound("this survey no longer exists")
    try:
        ctx.crm.signer.loads(INVITATION_PURPOSE, token, max_age=int(survey.definition["link_days"]) * 86400)
    except InvalidToken:
        raise InvalidToken("this survey link has expired", expired=True) from None
    return invitation, survey


def response_of(ctx: HookContext, survey: Survey, invitation: Invitation) -> SurveyResponse | None:
    """The response already given to *invitation*, if any."""
    if survey.anonymous:
        # the current key and every old one: a rotated secret_key must not open a second response
        condition = SurveyResponse.invitation_hash.in_(_anonymous_keys(ctx, invitation.id))
    else:
        condition = SurveyResponse.invitation_id == invitation.id
    found: SurveyResponse | None = ctx.first(SurveyResponse, condition)
    return found


def anonymous_key(ctx: HookContext, invitation_id: int) -> str:
    """A keyed hash that keeps one response per invitation without storing which invitation."""
    return _anonymous_keys(ctx, invitation_id)[-1]


def _anonymous_keys(ctx: HookContext, invitation_id: int) -> list[str]:
    """:func:`anonymous_key` under every ``old_secret_keys`` entry, then under the current ``secret_key``."""
    settings = ctx.crm.settings
    message = f"surveys-anonymous:{invitation_id}".encode()
    return [hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
            for secret in (*settings.old_secret_keys, settings.secret_key)]  # fmt: skip


def answered_unmatched(survey: Survey, invitation: Invitation, existing: SurveyResponse | None) -> bool:
    """Whether *invitation* was answered but its anonymous response can no longer be found.

    That happens once the secret key it was hashed with has left ``old_secret_keys``: the
    invitation stays answered (it cannot be answered twice), and the answer can no longer change.
    """
    return survey.anonymous and invitation.responded and existing is None


def editable(ctx: HookContext, survey: Survey, response: SurveyResponse) -> bool:
    """Whether *response* may still change: only a score so far, or ``update`` mode within the edit window."""
    if not response.complete:
        return True
    data = survey.definition
    window = timedelta(seconds=int(data["edit_window"]))
    return data["resubmit"] == "update" and ctx.now - response.submitted_at <= window


def clean_answers(survey: Survey, values: Mapping[str, Any], *, only: str | None = None) -> dict[str, Any]:
    """Validate answers against the survey's questions; every problem in one ValidationError.

    Scores arrive as numbers or digit strings, multiple choices as a list (or
    one value), texts as strings. *only* checks one question (a score link).
    """
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for question in survey.definition["questions"]:
        key, kind = question["key"], question["kind"]
        if only is not None and key != only:
            continue
        raw = values.get(key)
        if isinstance(raw, str):
            raw = raw.strip()
        blank = raw is None or raw == "" or raw == []
        if blank:
            if question["required"]:
                errors[key] = "is required"
            continue
        if kind in definitions.SCALES:
            low, high = definitions.SCALES[kind]
            number = _whole(raw)
            if number is None or not low <= number <= high:
                errors[key] = f"give a whole number from {low} to {high}"
            else:
                clean[key] = number
        elif kind == "single":
            allowed = [c["value"] for c in question["choices"]]
            if isinstance(raw, list) and len(raw) == 1:
                raw = raw[0]
            if raw not in allowed:
                errors[key] = "choose one of the options"
            else:
                clean[key] = raw
        elif kind == "multiple":
            chosen = raw if isinstance(raw, list) else [raw]
            allowed = [c["value"] for c in question["choices"]]
            if any(c not in allowed for c in chosen):
                errors[key] = "choose among the options"
            else:
                clean[key] = [c for c in allowed if c in chosen]
        else:
            try:
                clean[key] = clean_text(raw if isinstance(raw, str) else str(raw), key, MAX_ANSWER_TEXT)
            except ValidationError as exc:
                errors.update(exc.errors)
    if errors:
        raise ValidationError(errors)
    return clean


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) <= 3:
        return int(value)
    return None


def _answer_rows(survey: Survey, response: SurveyResponse, answers: Mapping[str, Any]) -> list[Answer]:
    rows = []
    for question in survey.definition["questions"]:
        key, kind = question["key"], question["kind"]
        if key not in answers:
            continue
        value = answers[key]
        common = {"response_id": response.id, "survey_id": survey.id, "question": key, "kind": kind}
        if kind in definitions.SCALES:
            rows.append(Answer(**common, score=value))
        elif kind == "single":
            rows.append(Answer(**common, choice=value))
        elif kind == "multiple":
            rows.extend(Answer(**common, choice=str(choice)) for choice in value)
        else:
            rows.append(Answer(**common, text=value))
    return rows


def summary(survey: Survey, answers: Mapping[str, Any], language: str | None = None) -> str:
    """The answers as plain text lines (the feedback's comment, a ticket's body): raw, never HTML."""
    data = survey.definition
    lines = []
    for question in data["questions"]:
        if question["key"] not in answers:
            continue
        value = answers[question["key"]]
        if question["kind"] in ("single", "multiple"):
            labels = {c["value"]: definitions.translate(c["label"], language, data["default_language"])
                      for c in question["choices"]}  # fmt: skip
            value = ", ".join(str(labels.get(v, v)) for v in (value if isinstance(value, list) else [value]))
        text = definitions.translate(question["text"], language, data["default_language"])
        lines.append(f"{text}: {value}")
    return "\n".join(lines)


def record_in(
    ctx: HookContext,
    invitation: Invitation,
    survey: Survey,
    answers: Mapping[str, Any],
    *,
    complete: bool,
    language: str | None,
    channel: str,
) -> SurveyResponse:
    """Store validated *answers* for *invitation* (create, update, or refuse); fire the hooks."""
    if survey.state != SurveyState.ACTIVE:
        raise SurveyClosed(f"the survey {survey.title!r} is {'closed' if survey.state == 'closed' else 'not open'}"
                           " and takes no more answers")  # fmt: skip
    data = survey.definition
    head = definitions.headline(data)
    existing = response_of(ctx, survey, invitation)
    updated = existing is not None
    if answered_unmatched(survey, invitation, existing):
        raise Conflict("you have already answered this survey, and it can no longer be changed")
    if existing is not None and not editable(ctx, survey, existing):
        if data["resubmit"] == "refuse":
            raise Conflict("you have already answered this survey; thank you")
        raise Conflict("you have already answered this survey, and it can no longer be changed")
    if existing is not None and not complete:
        # a score link after a full answer only changes the headline score
        previous = {a.question: a for a in ctx.session.scalars(select(Answer).where(Answer.response_id == existing.id))}
        merged = _answers_of(survey, list(previous.values()))
        merged.update(answers)
        answers, complete = merged, existing.complete
    contact = None
    if not survey.anonymous and invitation.contact_id is not None:
        contact = ctx.session.get(Contact, invitation.contact_id)
    before = rollup.snapshot(ctx.session, invitation, existing)
    response = existing or SurveyResponse(survey_id=survey.id, submitted_at=ctx.now, actions=[])
    if survey.anonymous:
        response.invitation_hash = anonymous_key(ctx, invitation.id)
    else:
        response.invitation_id = invitation.id
        response.contact_id = contact.id if contact is not None else None
        response.subject_kind, response.subject_id = invitation.subject_kind, invitation.subject_id
    response.agent_id, response.product = invitation.agent_id, invitation.product
    response.channel, response.language = invitation.channel, (language or invitation.language)
    response.score = answers.get(head["key"]) if head is not None else None
    response.complete, response.updated_at = complete, ctx.now
    if existing is None:
        ctx.session.add(response)
    ctx.session.flush()
    ctx.session.execute(delete(Answer).where(Answer.response_id == response.id))
    ctx.session.add_all(_answer_rows(survey, response, answers))
    invitation.responded = True
    rollup.record(ctx.session, before, invitation, response)
    _feedback(ctx, survey, response, answers, contact, language)
    if contact is not None:
        _contact_fields(ctx, survey, contact, answers)
    kind = head["kind"] if head is not None else None
    ctx.call(
        "crm_survey_response_recorded",
        event=SurveyResponseRecorded(
            response_id=response.id, survey_id=survey.id, survey_key=survey.key, contact_id=response.contact_id,
            kind=kind, score=response.score, category=definitions.category(kind, response.score),
            subject_kind=response.subject_kind, subject_id=response.subject_id, complete=complete,
            updated=updated, occurred_at=ctx.now,
        ),
    )  # fmt: skip
    if contact is not None:
        rescore(ctx, contact)
    ctx.audit("survey.response", "survey", survey.id, {"response_id": response.id, "updated": updated})
    return response


def _answers_of(survey: Survey, rows: list[Answer]) -> dict[str, Any]:
    kinds = {q["key"]: q["kind"] for q in survey.definition["questions"]}
    answers: dict[str, Any] = {}
    for row in rows:
        kind = kinds.get(row.question)
        if kind in definitions.SCALES:
            answers[row.question] = row.score
        elif kind == "single":
            answers[row.question] = row.choice
        elif kind == "multiple":
            answers.setdefault(row.question, []).append(row.choice)
        elif kind == "text":
            answers[row.question] = row.text
    return answers


def _feedback(
    ctx: HookContext, survey: Survey, response: SurveyResponse, answers: Mapping[str, Any], contact: Contact | None,
    language: str | None,
) -> None:  # fmt: skip
    comment = summary(survey, answers, language) or None
    rating = response.score
    if response.feedback_id is not None:
        feedback = ctx.session.get(Feedback, response.feedback_id)
        if feedback is not None:
            feedback.rating, feedback.comment = rating, comment
            return
    if rating is None and comment is None:
        return
    feedback = ctx.crm.customers.add_feedback(
        contact.id if contact is not None else None, source=f"survey:{survey.key}"[:60], rating=rating,
        comment=comment, subject_kind=response.subject_kind, subject_id=response.subject_id,
    )  # fmt: skip
    response.feedback_id = feedback.id


def _contact_fields(ctx: HookContext, survey: Survey, contact: Contact, answers: Mapping[str, Any]) -> None:
    """Write answers of questions with a ``contact_field`` into the contact's custom fields."""
    values = {}
    for question in survey.definition["questions"]:
        field = question.get("contact_field")
        if field and question["key"] in answers:
            value = answers[question["key"]]
            values[field] = ", ".join(value) if isinstance(value, list) else value
    if not values:
        return
    try:
        ctx.crm.contacts.update(contact.id, custom=values)
    except ValidationError as exc:  # a misconfigured field must not lose the customer's answer
        log.warning("survey %s: contact fields of contact %s not written: %s", survey.key, contact.id, exc.errors)


class AnswerService(Service):
    """Responses: ``surveys(crm).answers``."""

    def page(self, token: str) -> dict[str, Any]:
        """What the answer page shows: survey, invitation, earlier answers; refused when closed or expired."""
        with self.crm.transaction(readonly=True) as ctx:
            invitation, survey = open_invitation(ctx, token)
            if survey.state != SurveyState.ACTIVE:
                raise SurveyClosed(f"the survey {survey.title!r} is closed and takes no more answers")
            existing = response_of(ctx, survey, invitation)
            previous: dict[str, Any] = {}
            if existing is not None:
                rows = list(ctx.session.scalars(select(Answer).where(Answer.response_id == existing.id)))
                previous = _answers_of(survey, rows)
            contact = ctx.session.get(Contact, invitation.contact_id) if invitation.contact_id else None
            return {"survey": survey, "invitation": invitation, "response": existing, "answers": previous,
                    "contact_language": contact.language if contact is not None else None,
                    "locked": answered_unmatched(survey, invitation, existing)
                    or (existing is not None and not editable(ctx, survey, existing))}  # fmt: skip

    def submit(self, token: str, values: Mapping[str, Any], *, language: str | None = None) -> SurveyResponse:
        """Store the answer page's submission (all questions validated at once)."""
        with self.crm.transaction() as ctx:
            invitation, survey = open_invitation(ctx, token)
            if survey.state != SurveyState.ACTIVE:
                raise SurveyClosed(f"the survey {survey.title!r} is closed and takes no more answers")
            answers = clean_answers(survey, values)
            return record_in(ctx, invitation, survey, answers, complete=True, language=language, channel="web")

    def score(self, token: str, score: Any) -> SurveyResponse:
        """Store the headline score from a score link of the invitation email."""
        with self.crm.transaction() as ctx:
            invitation, survey = open_invitation(ctx, token)
            if survey.state != SurveyState.ACTIVE:
                raise SurveyClosed(f"the survey {survey.title!r} is closed and takes no more answers")
            head = definitions.headline(survey.definition)
            if head is None or head["kind"] not in ("nps", "csat"):
                raise ValidationError({"score": "this survey has no score to answer from the email"})
            answers = clean_answers(survey, {head["key"]: score}, only=head["key"])
            if head["key"] not in answers:
                raise ValidationError({head["key"]: "is required"})
            return record_in(ctx, invitation, survey, answers, complete=False, language=None, channel="email")

"""Surveys: create from a definition, activate, close, invite contacts, send to a segment.

Each public method of :class:`SurveyService` is one transaction. Invitations
are rows; the email goes out through the outbox when the invitation is due
(``surveys.send_invitation``), re-checking consent and the survey's state then.
"""

from __future__ import annotations

import builtins
import difflib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, select

from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.models import Contact
from crmcore.services.base import Service, get_contact
from crmcore_surveys import definition as definitions
from crmcore_surveys.models import Invitation, Survey, SurveyResponse, SurveyState, SurveyTrigger

if TYPE_CHECKING:
    from crmcore.context import HookContext

INVITATION_PURPOSE = "surveys-invitation"
SEND_HANDLER = "surveys.send_invitation"
#: Hooks of optional plugins a definition may name although the plugin is not enabled here:
#: the trigger stays dormant (it never fires) instead of being an error.
OPTIONAL_HOOKS = {"crm_ticket_solved": "ticketing", "crm_campaign_message_sent": "email_marketing"}


def setting(ctx_or_crm: Any, name: str) -> Any:
    """A surveys setting."""
    crm = getattr(ctx_or_crm, "crm", ctx_or_crm)
    return crm.plugin_setting("surveys", name)


def get_survey(ctx: HookContext, ref: int | str | Survey) -> Survey:
    """A survey by id, key or instance; NotFound otherwise."""
    if isinstance(ref, Survey):
        found = ctx.session.get(Survey, ref.id)
    elif isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        found = ctx.session.get(Survey, int(ref))
    else:
        found = ctx.first(Survey, Survey.key == str(ref).strip().lower())
    if found is None:
        raise NotFound(f"no survey {ref!r}")
    return found


def listened_hooks(crm: Any) -> builtins.list[str]:
    """The hooks whose firing can send a survey on this CRM (published ones only)."""
    from crmcore_surveys.triggers import listening

    return sorted(listening(crm))


def check_triggers(crm: Any, triggers: builtins.list[dict[str, Any]]) -> None:
    """Refuse trigger hooks nobody publishes (with a suggestion) or that this CRM does not listen to."""
    from crmcore_surveys.triggers import listening

    errors: dict[str, str] = {}
    listened = listening(crm)
    for index, trigger in enumerate(triggers):
        hook = trigger["hook"]
        if hook in listened or (hook in OPTIONAL_HOOKS and not crm.plugins.is_enabled(OPTIONAL_HOOKS[hook])):
            continue
        caller = getattr(crm.plugins.pm.hook, hook, None)
        if caller is not None and caller.spec is not None:
            errors[f"triggers[{index}].hook"] = (
                f"{hook} is published but not listened to: add it to the surveys setting trigger_hooks"
            )
            continue
        known = [n for n in dir(crm.plugins.pm.hook) if n.startswith("crm_")]
        close = difflib.get_close_matches(hook, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        errors[f"triggers[{index}].hook"] = f"no enabled plugin publishes {hook}{hint}"
    if errors:
        raise ValidationError(errors)


def has_consent(ctx: HookContext, contact: Contact) -> bool:
    """Whether *contact* may get a survey by email: reachable, and consent for ``surveys`` held.

    The contact needs consent for purpose ``surveys`` on channel ``email`` in
    the consent ledger (``crm.consent``), unless the setting ``require_consent``
    is off; ``do_not_contact`` always wins.
    """
    if contact.do_not_contact or contact.erased_at is not None or contact.merged_into_id is not None:
        return False
    if not contact.email_normalized:
        return False
    if not setting(ctx, "require_consent"):
        return True
    holders = ctx.crm.consent.consented("surveys", "email").subquery()
    return ctx.scalar(select(holders.c[0]).where(holders.c[0] == contact.id).limit(1)) is not None


def in_quiet_period(ctx: HookContext, contact_id: int) -> bool:
    """Whether the contact was invited (to any survey) within the quiet period."""
    days = int(setting(ctx, "quiet_days"))
    if days <= 0:
        return False
    since = ctx.now - timedelta(days=days)
    return bool(
        ctx.scalar(
            select(
                exists().where(
                    Invitation.contact_id == contact_id,
                    Invitation.created_at > since,
                    Invitation.status.in_(("scheduled", "sent")),
                )
            )
        )
    )


def invite_in(
    ctx: HookContext,
    survey: Survey,
    contact: Contact,
    *,
    source: str,
    delay: int = 0,
    subject_kind: str | None = None,
    subject_id: int | None = None,
    agent_id: int | None = None,
    product: str | None = None,
    channel: str | None = None,
) -> tuple[Invitation | None, str | None]:
    """Invite *contact* inside *ctx*: ``(invitation, None)`` or ``(None, why not)``.

    Reasons a contact is passed over: the survey is not active, no email or
    consent, the quiet period.
    """
    if survey.state != SurveyState.ACTIVE:
        return None, f"survey {survey.key} is {survey.state}"
    if not has_consent(ctx, contact):
        return None, "no consent or no email"
    if in_quiet_period(ctx, contact.id):
        return None, "quiet period"
    invitation = Invitation(
        survey_id=survey.id, contact_id=contact.id, status="scheduled", source=source[:160],
        subject_kind=subject_kind, subject_id=subject_id, agent_id=agent_id,
        product=(product or None) and str(product)[:120], channel=(channel or None) and str(channel)[:40],
        language=contact.language, created_at=ctx.now, send_at=ctx.now + timedelta(seconds=delay),
    )  # fmt: skip
    ctx.session.add(invitation)
    ctx.session.flush()
    ctx.enqueue(SEND_HANDLER, {"invitation_id": invitation.id}, key=f"surveys:invitation:{invitation.id}",
                due_at=invitation.send_at)  # fmt: skip
    return invitation, None


def invitation_token(crm: Any, invitation_id: int) -> str:
    """The signed token of an invitation's links."""
    token: str = crm.signer.dumps(INVITATION_PURPOSE, invitation_id)
    return token


def invitation_url(crm: Any, invitation_id: int, score: int | None = None) -> str:
    """The absolute link to an invitation's page (with *score*: the one-click answer link)."""
    base = f"{crm.settings.base_url.rstrip('/')}/surveys/r/{invitation_token(crm, invitation_id)}"
    return base if score is None else f"{base}/{score}"


class SurveyService(Service):
    """Surveys: ``surveys(crm).surveys``."""

    def create(self, source: Mapping[str, Any] | str | Path, *, replace: bool = False, actor: Any = None) -> Survey:
        """Create a survey (as a draft) from a definition mapping or a YAML/JSON file.

        With *replace*, a draft with the same key gets the new definition.
        """
        data = definitions.load_file(source) if isinstance(source, str | Path) else definitions.validate(source)
        check_triggers(self.crm, data["triggers"])
        if data["anonymous"] and any(q.get("contact_field") for q in data["questions"]):
            raise ValidationError({"anonymous": "an anonymous survey cannot write answers to contact fields"})
        head = definitions.headline(data)
        with self.crm.transaction(actor) as ctx:
            survey = ctx.first(Survey, Survey.key == data["key"])
            if survey is not None:
                if not replace:
                    raise Conflict(f"survey {data['key']} already exists")
                if survey.state != SurveyState.DRAFT:
                    raise Conflict(f"survey {data['key']} is {survey.state}; only a draft can be replaced")
                for trigger in ctx.session.scalars(select(SurveyTrigger).where(SurveyTrigger.survey_id == survey.id)):
                    ctx.session.delete(trigger)
            else:
                survey = Survey(key=data["key"], state=SurveyState.DRAFT, created_at=ctx.now)
                ctx.session.add(survey)
            survey.title = definitions.translate(data["title"], None, data["default_language"])[:255]
            survey.definition = data
            survey.anonymous = data["anonymous"]
            survey.headline_kind = head["kind"] if head else None
            ctx.session.flush()
            for trigger in data["triggers"]:
                ctx.session.add(SurveyTrigger(survey_id=survey.id, hook=trigger["hook"], delay_seconds=trigger["delay"],
                                              sample_rate=trigger["sample"], conditions=trigger["when"]))  # fmt: skip
            ctx.audit("survey.create", "survey", survey.id, {"key": survey.key})
            created: Survey = survey
            return created

    def get(self, ref: int | str) -> Survey:
        """A survey by id or key."""
        with self.crm.transaction(readonly=True) as ctx:
            return get_survey(ctx, ref)

    def list(self, *, state: str | None = None) -> builtins.list[Survey]:
        """Surveys, by key; optionally only those in *state*."""
        if state is not None and state not in {s.value for s in SurveyState}:
            raise ValidationError({"state": f"give one of {', '.join(s.value for s in SurveyState)}"})
        with self.crm.transaction(readonly=True) as ctx:
            query = select(Survey).order_by(Survey.key)
            if state is not None:
                query = query.where(Survey.state == state)
            return builtins.list(ctx.session.scalars(query))

    def activate(self, ref: int | str, *, actor: Any = None) -> Survey:
        """Start sending and accepting answers (from draft; a closed survey stays closed)."""
        with self.crm.transaction(actor) as ctx:
            survey = get_survey(ctx, ref)
            if survey.state == SurveyState.CLOSED:
                raise Conflict(f"survey {survey.key} is closed; create a new one")
            if survey.state != SurveyState.ACTIVE:
                survey.state, survey.activated_at = SurveyState.ACTIVE.value, ctx.now
                ctx.audit("survey.activate", "survey", survey.id)
            return survey

    def close(self, ref: int | str, *, actor: Any = None) -> Survey:
        """Stop sending and answering; results stay. Pending invitations are skipped."""
        with self.crm.transaction(actor) as ctx:
            survey = get_survey(ctx, ref)
            if survey.state != SurveyState.CLOSED:
                survey.state, survey.closed_at = SurveyState.CLOSED.value, ctx.now
                ctx.audit("survey.close", "survey", survey.id)
            return survey

    def invite(
        self,
        survey: int | str,
        contact: int | str | Contact,
        *,
        delay: int = 0,
        subject_kind: str | None = None,
        subject_id: int | None = None,
        actor: Any = None,
    ) -> Invitation:
        """Invite one contact now (or after *delay* seconds); refused with the reason when not possible."""
        with self.crm.transaction(actor) as ctx:
            row = get_survey(ctx, survey)
            target = get_contact(ctx, contact)
            invitation, reason = invite_in(ctx, row, target, source="manual", delay=delay,
                                           subject_kind=subject_kind, subject_id=subject_id)  # fmt: skip
            if invitation is None:
                raise Conflict(f"cannot invite {target.email or target.id}: {reason}")
            return invitation

    def send_to_segment(self, survey: int | str, segment: str, *, actor: Any = None) -> dict[str, int]:
        """Invite every contact of *segment* (``crm_segment_query``); counts invited and passed over."""
        with self.crm.transaction(actor) as ctx:
            row = get_survey(ctx, survey)
            if row.state != SurveyState.ACTIVE:
                raise Conflict(f"survey {row.key} is {row.state}; activate it first")
            query = ctx.call("crm_segment_query", name=segment)
            if query is None:
                names = sorted(ctx.crm.plugins.collect("crm_segment_names", ctx=ctx))
                raise NotFound(f"no segment {segment!r}; segments: {', '.join(names) or 'none'}")
            ids = query.subquery()
            source = f"segment:{segment}"[:160]
            # a second run of the same send (after a crash, or by mistake) invites nobody twice
            already = set(ctx.session.scalars(select(Invitation.contact_id).where(
                Invitation.survey_id == row.id, Invitation.source == source)))  # fmt: skip
            counts: dict[str, int] = {"invited": 0}
            contacts = ctx.session.scalars(select(Contact).where(Contact.id.in_(select(ids.c[0]))).order_by(Contact.id))
            for contact in contacts:
                if contact.id in already:
                    counts["skipped: already invited"] = counts.get("skipped: already invited", 0) + 1
                    continue
                invitation, reason = invite_in(ctx, row, contact, source=source)
                key = "invited" if invitation is not None else f"skipped: {reason}"
                counts[key] = counts.get(key, 0) + 1
            ctx.audit("survey.send", "survey", row.id, {"segment": segment, **counts})
            return counts

    def invitations(self, survey: int | str) -> builtins.list[Invitation]:
        """A survey's invitations, oldest first."""
        with self.crm.transaction(readonly=True) as ctx:
            row = get_survey(ctx, survey)
            return builtins.list(
                ctx.session.scalars(select(Invitation).where(Invitation.survey_id == row.id).order_by(Invitation.id))
            )

    def responses(self, survey: int | str) -> builtins.list[SurveyResponse]:
        """A survey's responses, oldest first."""
        with self.crm.transaction(readonly=True) as ctx:
            row = get_survey(ctx, survey)
            return builtins.list(
                ctx.session.scalars(
                    select(SurveyResponse).where(SurveyResponse.survey_id == row.id).order_by(SurveyResponse.id)
                )
            )

    def rebuild_rollup(self, *, actor: Any = None) -> int:
        """Recompute the results' daily rollup from the raw rows, in the CRM's zone; the rows written.

        Needed after the CRM's time zone changes, or after rows were loaded
        into the surveys tables without the services (the rollup is otherwise
        kept exact by every write).
        """
        from crmcore_surveys.rollup import rebuild

        with self.crm.transaction(actor) as ctx:
            written = rebuild(ctx.session.connection(), self.crm.settings.timezone, ctx.now)
            ctx.audit("survey.rollup", "survey", None, {"rows": written, "zone": self.crm.settings.timezone})
            return written

    def describe(self, ref: int | str) -> dict[str, Any]:
        """What ``crm survey show`` prints: state, questions, triggers (dormant ones marked), counts."""
        from sqlalchemy import func

        listened = set(listened_hooks(self.crm))
        with self.crm.transaction(readonly=True) as ctx:
            survey = get_survey(ctx, ref)
            data = survey.definition
            invited = ctx.scalar(select(func.count()).select_from(Invitation).where(Invitation.survey_id == survey.id))
            answered = ctx.scalar(
                select(func.count()).select_from(SurveyResponse).where(SurveyResponse.survey_id == survey.id)
            )
            return {
                "key": survey.key, "title": survey.title, "state": survey.state, "anonymous": survey.anonymous,
                "headline": survey.headline_kind, "languages": data["languages"],
                "questions": [
                    {"key": q["key"], "kind": q["kind"], "required": q["required"],
                     "text": definitions.translate(q["text"], None, data["default_language"])}
                    for q in data["questions"]
                ],
                "triggers": [
                    {**t, "active": t["hook"] in listened} for t in data["triggers"]
                ],
                "invitations": invited or 0, "responses": answered or 0,
            }  # fmt: skip

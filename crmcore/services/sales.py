"""Sales: pipelines and their stages, opportunities, activities and reminders."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import attrs
from sqlalchemy import ColumnElement, select

from crmcore import permissions
from crmcore.context import HookContext
from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.events import OpportunityClosed, OpportunityCreated, OpportunityStageChanged
from crmcore.i18n import N_
from crmcore.models import Activity, Opportunity, OpportunityStageChange, Pipeline, PipelineStage
from crmcore.services.base import ContactRef, Service, editable_contact, get_contact, get_user
from crmcore.services.customers import convert_in
from crmcore.validation import clean_text, currency_code, parse_date, parse_datetime, positive_amount

ACTIVITY_KINDS = ("call", "meeting", "task", "follow_up", "email")
#: The job handler that fires activity reminders.
REMINDER_HANDLER = "core.activity_reminder"


@attrs.frozen(kw_only=True)
class StageSpec:
    """A pipeline stage as declared: key, name, win probability in percent, outcome."""

    key: str
    name: str
    probability: int
    outcome: str = "open"


def _stage(ctx: HookContext, pipeline_id: int, key: str) -> PipelineStage:
    stage = ctx.first(PipelineStage, PipelineStage.pipeline_id == pipeline_id, PipelineStage.key == key)
    if stage is None:
        keys = ctx.session.scalars(
            select(PipelineStage.key).where(PipelineStage.pipeline_id == pipeline_id).order_by(PipelineStage.position)
        ).all()
        raise ValidationError.on("stage", N_("no stage %(key)s; stages: %(stages)s"), key=repr(key),
                                 stages=", ".join(keys))
    return stage  # type: ignore[no-any-return]


def _pipeline(ctx: HookContext, name: str | None) -> Pipeline:
    if name is None:
        pipeline = ctx.first(Pipeline, Pipeline.is_default.is_(True))
        if pipeline is None:
            raise NotFound("no default pipeline: run `crm db upgrade` or define one")
    else:
        pipeline = ctx.first(Pipeline, Pipeline.name == name)
        if pipeline is None:
            raise ValidationError({"pipeline": f"no pipeline {name!r}"})
    return pipeline  # type: ignore[no-any-return]


class SalesService(Service):
    """Opportunities through the pipeline, and the activities around them."""

    def define_pipeline(
        self, name: str, stages: Sequence[StageSpec], *, default: bool = False, actor: Any = None
    ) -> Pipeline:
        """Create a pipeline or update its stages (idempotent; stages in use are kept)."""
        errors: dict[str, str] = {}
        keys = [s.key for s in stages]
        if len(set(keys)) != len(keys):
            errors["stages"] = "stage keys must be unique"
        if not any(s.outcome == "won" for s in stages) or not any(s.outcome == "lost" for s in stages):
            errors["stages"] = "a pipeline needs a won stage and a lost stage"
        for spec in stages:
            if spec.outcome not in ("open", "won", "lost"):
                errors[f"stage {spec.key}"] = "outcome must be open, won or lost"
            if not 0 <= spec.probability <= 100:
                errors[f"stage {spec.key}"] = "probability must be between 0 and 100"
        if errors:
            raise ValidationError(errors)
        with self.crm.transaction(actor) as ctx:
            pipeline = ctx.first(Pipeline, Pipeline.name == name)
            if pipeline is None:
                pipeline = Pipeline(name=clean_text(name, "name", 120, required=True), is_default=False)
                ctx.session.add(pipeline)
                ctx.session.flush()
            if default and not pipeline.is_default:
                for other in ctx.session.scalars(select(Pipeline).where(Pipeline.is_default.is_(True))):
                    other.is_default = False
                pipeline.is_default = True
            existing = {
                s.key: s
                for s in ctx.session.scalars(select(PipelineStage).where(PipelineStage.pipeline_id == pipeline.id))
            }
            for position, spec in enumerate(stages):
                row = existing.get(spec.key)
                if row is None:
                    row = PipelineStage(pipeline_id=pipeline.id, key=spec.key)
                    ctx.session.add(row)
                row.name, row.position, row.probability, row.outcome = (
                    spec.name,
                    position,
                    spec.probability,
                    spec.outcome,
                )
            ctx.audit("pipeline.define", "pipeline", pipeline.id, {"stages": keys})
        return pipeline  # type: ignore[no-any-return]

    def stages(self, pipeline: str | None = None) -> list[PipelineStage]:
        """The stages of a pipeline (the default one when not named), in order."""
        with self.crm.transaction(readonly=True) as ctx:
            found = _pipeline(ctx, pipeline)
            return list(
                ctx.session.scalars(
                    select(PipelineStage).where(PipelineStage.pipeline_id == found.id).order_by(PipelineStage.position)
                )
            )

    def stage_keys(self) -> dict[int, str]:
        """Every pipeline stage's key by id."""
        with self.crm.transaction(readonly=True) as ctx:
            return dict(ctx.session.execute(select(PipelineStage.id, PipelineStage.key)).all())

    def create_opportunity(
        self,
        contact: ContactRef | None,
        *,
        name: str,
        amount: Any = 0,
        currency: str | None = None,
        stage: str | None = None,
        pipeline: str | None = None,
        owner: int | str | None = None,
        expected_close_on: date | str | None = None,
        actor: Any = None,
    ) -> Opportunity:
        """Open an opportunity in the first (or given) open stage of a pipeline."""
        name_text = clean_text(name, "name", 255, required=True)
        value = positive_amount(amount, "amount")
        code = currency_code(currency, self.crm.settings.currency)
        close_on = parse_date(expected_close_on, "expected_close_on")
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "opportunities.edit")
            target = get_contact(ctx, contact) if contact is not None else None
            found = _pipeline(ctx, pipeline)
            if stage is None:
                first = ctx.session.scalars(
                    select(PipelineStage)
                    .where(PipelineStage.pipeline_id == found.id, PipelineStage.outcome == "open")
                    .order_by(PipelineStage.position)
                    .limit(1)
                ).first()
                if first is None:
                    raise ValidationError.on("stage", N_("pipeline %(name)s has no open stage"), name=found.name)
                start = first
            else:
                start = _stage(ctx, found.id, stage)
                if start.outcome != "open":
                    raise ValidationError({"stage": N_("an opportunity starts in an open stage")})
            owner_user = get_user(ctx, owner)
            opportunity = Opportunity(
                name=name_text, contact_id=target.id if target else None,
                organization_id=target.organization_id if target else None,
                pipeline_id=found.id, stage_id=start.id, amount=value, currency=code,
                owner_id=owner_user.id if owner_user else (ctx.actor.user_id or (target.owner_id if target else None)),
                expected_close_on=close_on, status="open", created_at=ctx.now, stage_entered_at=ctx.now,
            )  # fmt: skip
            ctx.call("crm_opportunity_before_create", opportunity=opportunity)
            ctx.session.add(opportunity)
            ctx.session.flush()
            ctx.session.add(OpportunityStageChange(opportunity_id=opportunity.id, from_stage_id=None,
                                                   to_stage_id=start.id, changed_at=ctx.now,
                                                   actor_id=ctx.actor.user_id))  # fmt: skip
            ctx.audit("opportunity.create", "opportunity", opportunity.id,
                      {"name": name_text, "amount": value, "stage": start.key})  # fmt: skip
            ctx.call(
                "crm_opportunity_created",
                event=OpportunityCreated(
                    opportunity_id=opportunity.id,
                    contact_id=opportunity.contact_id,
                    stage=start.key,
                    occurred_at=ctx.now,
                ),
            )
        return opportunity

    def get_opportunity(self, opportunity_id: int) -> Opportunity:
        """An opportunity by id."""
        with self.crm.transaction(readonly=True) as ctx:
            return _opportunity(ctx, opportunity_id)

    def list_opportunities(
        self, *, status: str | None = "open", limit: int = 100, pipeline: str | None = None,
        search: str | None = None, contact: ContactRef | None = None,
    ) -> list[Opportunity]:  # fmt: skip
        """Opportunities within the actor's reach, newest first (by name text or contact)."""
        query = select(Opportunity).order_by(Opportunity.id.desc()).limit(limit)
        if status:
            query = query.where(Opportunity.status == status)
        if search:
            query = query.where(opportunity_search(search))
        with self.crm.transaction(readonly=True) as ctx:
            permissions.require(ctx, "opportunities.view")
            reach = permissions.owner_condition(ctx, Opportunity.owner_id)
            if reach is not None:
                query = query.where(reach)
            if pipeline is not None:
                query = query.where(Opportunity.pipeline_id == _pipeline(ctx, pipeline).id)
            if contact is not None:
                query = query.where(Opportunity.contact_id == get_contact(ctx, contact).id)
            return list(ctx.session.scalars(query))

    def list_activities(
        self, *, owner: int | str | None = None, due_before: datetime | None = None,
        open_only: bool = True, contact: ContactRef | None = None, limit: int = 100,
    ) -> list[Activity]:  # fmt: skip
        """Activities (of one owner, or one contact), earliest due first; the actor's reach applies."""
        query = select(Activity).order_by(Activity.due_at.is_(None), Activity.due_at, Activity.id).limit(limit)
        if open_only:
            query = query.where(Activity.done_at.is_(None))
        if due_before is not None:
            query = query.where(Activity.due_at < due_before)
        with self.crm.transaction(readonly=True) as ctx:
            if owner is not None:
                user = get_user(ctx, owner)
                if user is None or not permissions.reaches(ctx, user.id):
                    raise NotFound(f"no user {owner!r}")
                query = query.where(Activity.owner_id == user.id)
            if contact is not None:
                query = query.where(Activity.contact_id == get_contact(ctx, contact).id)
            reach = permissions.owner_condition(ctx, Activity.owner_id)
            if reach is not None:
                query = query.where(reach)
            return list(ctx.session.scalars(query))

    def move(self, opportunity_id: int, stage: str, *, reason: str | None = None, actor: Any = None) -> Opportunity:
        """Move an opportunity to *stage*; a won or lost stage closes it."""
        with self.crm.transaction(actor) as ctx:
            opportunity = _opportunity(ctx, opportunity_id)
            permissions.require(ctx, "opportunities.edit")
            self._move_in(ctx, opportunity, _stage(ctx, opportunity.pipeline_id, stage), reason)
        return opportunity

    def win(self, opportunity_id: int, *, actor: Any = None) -> Opportunity:
        """Mark an opportunity won; its contact becomes a customer."""
        with self.crm.transaction(actor) as ctx:
            opportunity = _opportunity(ctx, opportunity_id)
            permissions.require(ctx, "opportunities.edit")
            target = ctx.first(PipelineStage, PipelineStage.pipeline_id == opportunity.pipeline_id,
                               PipelineStage.outcome == "won")  # fmt: skip
            self._move_in(ctx, opportunity, target, None)
        return opportunity

    def lose(self, opportunity_id: int, *, reason: str, actor: Any = None) -> Opportunity:
        """Mark an opportunity lost, with the reason."""
        reason_text = clean_text(reason, "reason", 255, required=True)
        with self.crm.transaction(actor) as ctx:
            opportunity = _opportunity(ctx, opportunity_id)
            permissions.require(ctx, "opportunities.edit")
            target = ctx.first(PipelineStage, PipelineStage.pipeline_id == opportunity.pipeline_id,
                               PipelineStage.outcome == "lost")  # fmt: skip
            self._move_in(ctx, opportunity, target, reason_text)
        return opportunity

    def _move_in(self, ctx: HookContext, opportunity: Opportunity, to: PipelineStage, reason: str | None) -> None:
        if opportunity.status != "open":
            raise Conflict.of(N_("opportunity %(id)s is already %(status)s"), id=str(opportunity.id),
                              terms={"status": opportunity.status})
        if to.id == opportunity.stage_id:
            raise ValidationError.on("stage", N_("opportunity %(id)s is already at %(stage)s"), id=str(opportunity.id),
                                     stage=to.key)
        if to.outcome == "lost" and not reason:
            raise ValidationError({"reason": N_("give the reason the deal was lost")})
        ctx.call("crm_opportunity_before_stage_change", opportunity=opportunity, to_stage=to)
        before = ctx.session.get(PipelineStage, opportunity.stage_id)
        assert before is not None
        ctx.session.add(OpportunityStageChange(opportunity_id=opportunity.id, from_stage_id=before.id,
                                               to_stage_id=to.id, changed_at=ctx.now,
                                               actor_id=ctx.actor.user_id))  # fmt: skip
        opportunity.stage_id = to.id
        opportunity.stage_entered_at = ctx.now
        if to.outcome != "open":
            opportunity.status = to.outcome
            opportunity.closed_at = ctx.now
            opportunity.lost_reason = reason if to.outcome == "lost" else None
        ctx.audit(
            "opportunity.move", "opportunity", opportunity.id, {"from": before.key, "to": to.key, "reason": reason}
        )
        ctx.call(
            "crm_opportunity_stage_changed",
            event=OpportunityStageChanged(
                opportunity_id=opportunity.id, from_stage=before.key, to_stage=to.key, occurred_at=ctx.now
            ),
        )
        if to.outcome == "open":
            return
        closed = OpportunityClosed(
            opportunity_id=opportunity.id, contact_id=opportunity.contact_id, won=to.outcome == "won",
            amount=opportunity.amount, currency=opportunity.currency, reason=reason, occurred_at=ctx.now,
        )  # fmt: skip
        if to.outcome == "won":
            ctx.call("crm_opportunity_won", event=closed)
            if opportunity.contact_id is not None:
                contact = get_contact(ctx, opportunity.contact_id)
                convert_in(ctx, contact, reason=N_("won opportunity"), opportunity_id=opportunity.id)
        else:
            ctx.call("crm_opportunity_lost", event=closed)

    def add_activity(
        self,
        *,
        kind: str,
        subject: str,
        contact: ContactRef | None = None,
        opportunity_id: int | None = None,
        due_at: datetime | str | None = None,
        remind_at: datetime | str | None = None,
        owner: int | str | None = None,
        notes: str | None = None,
        actor: Any = None,
    ) -> Activity:
        """Plan a call, meeting, task or follow-up; a reminder is a timer in the outbox."""
        if kind not in ACTIVITY_KINDS:
            raise ValidationError({"kind": f"unknown kind {kind!r}; kinds: {', '.join(ACTIVITY_KINDS)}"})
        subject_text = clean_text(subject, "subject", 255, required=True)
        due = parse_datetime(due_at, "due_at")
        remind = parse_datetime(remind_at, "remind_at")
        with self.crm.transaction(actor) as ctx:
            target = editable_contact(ctx, contact) if contact is not None else None
            if opportunity_id is not None:
                _opportunity(ctx, opportunity_id)
            owner_user = get_user(ctx, owner)
            activity = Activity(
                kind=kind, subject=subject_text, notes=clean_text(notes, "notes", 20000), due_at=due,
                remind_at=remind, contact_id=target.id if target else None, opportunity_id=opportunity_id,
                owner_id=owner_user.id if owner_user else ctx.actor.user_id, created_at=ctx.now,
            )  # fmt: skip
            ctx.session.add(activity)
            ctx.session.flush()
            if remind is not None:
                ctx.enqueue(REMINDER_HANDLER, {"activity_id": activity.id},
                            key=f"core.activity:{activity.id}:reminder", due_at=remind)  # fmt: skip
            ctx.audit("activity.add", "activity", activity.id, {"kind": kind, "subject": subject_text})
        return activity

    def complete_activity(self, activity_id: int, *, actor: Any = None) -> Activity:
        """Mark an activity done; its pending reminder is cancelled."""
        with self.crm.transaction(actor) as ctx:
            activity = ctx.session.get(Activity, activity_id)
            if activity is None or not permissions.reaches(ctx, activity.owner_id):
                raise NotFound.of(N_("no activity %(id)s"), id=str(activity_id))
            if activity.done_at is not None:
                raise Conflict.of(N_("activity %(id)s is already done"), id=str(activity_id))
            activity.done_at = ctx.now
            ctx.cancel_jobs(f"core.activity:{activity.id}:reminder")
            ctx.audit("activity.done", "activity", activity.id, {})
        return activity


def _opportunity(ctx: HookContext, opportunity_id: int) -> Opportunity:
    opportunity = ctx.session.get(Opportunity, opportunity_id)
    if opportunity is None:
        raise NotFound.of(N_("no opportunity %(id)s"), id=str(opportunity_id))
    if ctx.actor.user_id is not None:
        permissions.require(ctx, "opportunities.view")
        if not permissions.reaches(ctx, opportunity.owner_id):
            raise NotFound.of(N_("no opportunity %(id)s"), id=str(opportunity_id))
    return opportunity


def opportunity_search(text: str) -> ColumnElement[bool]:
    """The condition of opportunities whose name contains *text* (any case, wildcards taken literally)."""
    return opportunity_matches(opportunity_pattern(text))


def opportunity_pattern(text: str) -> str:
    """The LIKE pattern of :func:`opportunity_search` (backslash escapes)."""
    return f"%{_like(text)}%"


def opportunity_matches(pattern: Any) -> ColumnElement[bool]:
    """:func:`opportunity_search`'s condition for a pattern (a value, or a bound parameter)."""
    return Opportunity.name.ilike(pattern, escape="\\")


def _like(text: str) -> str:
    """*text* with LIKE wildcards escaped (backslash is the escape character)."""
    return text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

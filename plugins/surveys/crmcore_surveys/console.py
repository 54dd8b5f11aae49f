"""The surveys plugin in the staff console: a contact's survey answers as a panel on their page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from crmcore import permissions
from crmcore.console import Panel, render_panel
from crmcore_surveys.definition import category

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.models import Contact

#: Responses shown on the contact page, newest first.
PANEL_RESPONSES = 10
#: Badge classes of the headline categories.
BADGES = {"promoter": "ok", "passive": "warn", "detractor": "bad"}


def contact_panels(contact: Contact, ctx: HookContext) -> list[Panel]:
    """The contact's latest responses: survey, when, headline score and category, and what they wrote."""
    from crmcore_surveys.models import Answer, Survey, SurveyResponse

    if not permissions.has(ctx, "surveys.view"):
        return []
    rows = ctx.session.execute(
        select(SurveyResponse.id, SurveyResponse.submitted_at, SurveyResponse.score, Survey.title,
               Survey.headline_kind)
        .join(Survey, Survey.id == SurveyResponse.survey_id)
        .where(SurveyResponse.contact_id == contact.id)
        .order_by(SurveyResponse.submitted_at.desc(), SurveyResponse.id.desc())
        .limit(PANEL_RESPONSES)
    ).all()  # fmt: skip
    comments: dict[int, list[str]] = {}
    if rows:
        texts = select(Answer.response_id, Answer.text).where(
            Answer.response_id.in_([row.id for row in rows]), Answer.kind == "text", Answer.text.is_not(None)
        ).order_by(Answer.id)  # fmt: skip
        for response_id, text in ctx.session.execute(texts):
            comments.setdefault(response_id, []).append(text)
    responses = [
        {"title": row.title, "at": row.submitted_at, "score": row.score, "kind": row.headline_kind,
         "category": (found := category(row.headline_kind, row.score)), "badge": BADGES.get(found or "", ""),
         "comments": comments.get(row.id, [])}
        for row in rows
    ]  # fmt: skip
    return [Panel(title="Survey answers", html=render_panel(ctx, "surveys/console/_responses.html",
                                                           responses=responses), order=60)]  # fmt: skip

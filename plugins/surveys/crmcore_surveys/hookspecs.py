"""Hooks the surveys plugin publishes for other plugins (alerting, CRM workflows, analytics).

Implement them with ``@hookimpl(optionalhook=True)`` so your plugin still loads
when surveys is not enabled. They run inside the transaction that stored the
response: a hook that raises rolls the response back, and writes a hook makes
commit with it. Side effects belong in the outbox (``ctx.enqueue``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore_surveys.events import SurveyResponseRecorded


@hookspec
def crm_survey_response_recorded(event: SurveyResponseRecorded, ctx: HookContext) -> None:
    """A survey response was stored, or updated within the survey's edit window.

    Fires on the answer page's submit and on a score link of the invitation
    email, after the answers and the contact's feedback row are written, inside
    the same transaction; raising rolls the response back. The plugin's own
    rules (detractor ticket or alert, promoter referral) are implementations of
    this hook. All implementations run; return values are ignored; they may write.

    :param event: The response, survey, contact (None when anonymous), headline kind, score and
        category (detractor, passive, promoter), the subject that triggered it, and whether it updated
        an earlier answer.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """

"""crmcore-surveys: NPS, CSAT and CES surveys sent on lifecycle events and answered on the web.

Reach the services of a CRM with :func:`surveys`::

    from crmcore_surveys import surveys

    service = surveys(crm)
    survey = service.surveys.create("support-csat.yaml")
    service.surveys.activate(survey.key)
"""

from __future__ import annotations

import weakref
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmcore.crm import CRM
    from crmcore_surveys.answering import AnswerService
    from crmcore_surveys.service import SurveyService

__all__ = ["Surveys", "surveys"]


class Surveys:
    """The surveys services of one CRM."""

    def __init__(self, crm: CRM) -> None:
        from crmcore.errors import ConfigError

        if not crm.plugins.is_enabled("surveys"):
            raise ConfigError("the surveys plugin is not enabled on this CRM")
        self.crm = crm

    @cached_property
    def surveys(self) -> SurveyService:
        """Create, activate and close surveys; invite contacts; send to a segment."""
        from crmcore_surveys.service import SurveyService

        return SurveyService(self.crm)

    @cached_property
    def answers(self) -> AnswerService:
        """Record responses from the answer page and the score links of the email."""
        from crmcore_surveys.answering import AnswerService

        return AnswerService(self.crm)


_services: weakref.WeakKeyDictionary[CRM, Surveys] = weakref.WeakKeyDictionary()


def surveys(crm: CRM) -> Surveys:
    """The surveys services of *crm* (made once per CRM)."""
    found = _services.get(crm)
    if found is None:
        found = _services[crm] = Surveys(crm)
    return found

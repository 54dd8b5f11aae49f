"""The bundle item kind surveys applies: ``surveys.survey``.

Key: the survey's key. Data: a survey definition (the mapping ``crm survey create
--file`` reads, its ``key`` equal to the item's key). Applying creates the survey
and activates it. A newer bundle may replace a survey only while it is a draft:
an active survey has answers that its questions explain, so changing it is
refused with the reason (ship the new questions under a new key).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore.bundles import BundleKind
from crmcore.errors import ValidationError
from crmcore_surveys.models import Survey

if TYPE_CHECKING:
    from crmcore.context import HookContext


def read_survey(ctx: HookContext, key: str) -> dict[str, Any] | None:
    """A stored survey's state and definition, or ``None``."""
    row = ctx.first(Survey, Survey.key == key)
    if row is None:
        return None
    return {"state": str(row.state), "definition": row.definition}


def write_survey(ctx: HookContext, key: str, data: dict[str, Any]) -> None:
    """Create (and activate) the survey, or replace a draft's definition."""
    from crmcore_surveys import surveys

    if data.get("key", key) != key:
        raise ValidationError({"key": f"the definition's key {data.get('key')!r} is not the item's key {key!r}"})
    service = surveys(ctx.crm).surveys
    existing = ctx.first(Survey, Survey.key == key)
    if existing is not None and str(existing.state) != "draft":
        raise ValidationError({"state": f"survey {key!r} is {existing.state}: a bundle cannot change its questions; "
                                        "ship them under a new key"})  # fmt: skip
    survey = service.create({**data, "key": key}, replace=existing is not None)
    service.activate(survey.key)


KINDS = [BundleKind(name="surveys.survey", read=read_survey, write=write_survey,
                    help="a survey definition (YAML/JSON mapping), created and activated")]  # fmt: skip

"""The frozen events the surveys hooks receive: ids and plain values, never live rows."""

from __future__ import annotations

from datetime import datetime

import attrs


@attrs.frozen(kw_only=True)
class SurveyResponseRecorded:
    """A response was stored or updated."""

    response_id: int
    survey_id: int
    survey_key: str
    #: None for anonymous surveys.
    contact_id: int | None
    #: The headline question's kind (``nps``, ``csat``, ``ces``) and score, when answered.
    kind: str | None
    score: int | None
    #: ``detractor``, ``passive`` or ``promoter`` for the headline score, else None.
    category: str | None
    #: What triggered the invitation (``ticket``, ``purchase``, ...) and its id; None when anonymous.
    subject_kind: str | None
    subject_id: int | None
    #: False while only the headline score came from the email's score link.
    complete: bool
    #: True when an earlier response of the same invitation was changed.
    updated: bool
    occurred_at: datetime

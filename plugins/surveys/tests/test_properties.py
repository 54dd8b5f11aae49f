"""Property-based checks of answer validation: every scale's range, choices, and what survives as text."""

from __future__ import annotations

import pytest
from crmcore_surveys.answering import clean_answers
from crmcore_surveys.definition import SCALES, category, validate
from crmcore_surveys.models import Survey
from hypothesis import given
from hypothesis import strategies as st

from crmcore.errors import ValidationError

DEFINITION = validate({
    "key": "all-kinds", "title": "All kinds",
    "questions": [
        {"key": "nps", "kind": "nps", "text": "NPS"},
        {"key": "csat", "kind": "csat", "text": "CSAT"},
        {"key": "ces", "kind": "ces", "text": "CES"},
        {"key": "pick", "kind": "multiple", "text": "Pick", "choices": ["a", "b", "c"]},
        {"key": "say", "kind": "text", "text": "Say"},
    ],
})  # fmt: skip
SURVEY = Survey(key="all-kinds", definition=DEFINITION)


@given(kind=st.sampled_from(sorted(SCALES)), score=st.integers(-1000, 1000), as_text=st.booleans())
def test_a_score_is_accepted_exactly_within_its_scale(kind, score, as_text):
    low, high = SCALES[kind]
    value = str(score) if as_text else score
    if low <= score <= high:
        assert clean_answers(SURVEY, {kind: value}) == {kind: score}
        assert category(kind, score) in ("detractor", "passive", "promoter")
    else:
        with pytest.raises(ValidationError) as caught:
            clean_answers(SURVEY, {kind: value})
        assert caught.value.errors == {kind: f"give a whole number from {low} to {high}"}


@given(
    st.one_of(st.floats(allow_nan=True), st.booleans(), st.text(max_size=5).filter(lambda t: not t.strip().isdigit()))
)
def test_anything_but_a_whole_number_is_no_score(value):
    if value in ("", None) or (isinstance(value, str) and not value.strip()):
        assert clean_answers(SURVEY, {"nps": value}) == {}
        return
    with pytest.raises(ValidationError):
        clean_answers(SURVEY, {"nps": value})


@given(st.lists(st.sampled_from(["a", "b", "c", "x"]), max_size=6))
def test_multiple_choice_keeps_the_options_order_and_refuses_unknown_ones(chosen):
    if "x" in chosen:
        with pytest.raises(ValidationError):
            clean_answers(SURVEY, {"pick": chosen})
    elif chosen:
        assert clean_answers(SURVEY, {"pick": chosen}) == {"pick": [c for c in "abc" if c in chosen]}


@given(st.text(max_size=200))
def test_text_is_kept_as_typed_apart_from_outer_whitespace(text):
    try:
        answers = clean_answers(SURVEY, {"say": text})
    except ValidationError as exc:
        assert exc.errors == {"say": "contains control characters"}
        return
    assert answers == ({"say": text.strip()} if text.strip() else {})

"""Fixtures of the surveys tests: the services, definitions, customers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from crmcore_surveys import surveys

DATA = Path(__file__).resolve().parent / "data"

NPS = {
    "key": "nps",
    "title": {"en": "Would you recommend us?", "de": "Würden Sie uns empfehlen?"},
    "default_language": "en",
    "questions": [
        {
            "key": "score",
            "kind": "nps",
            "required": True,
            "text": {
                "en": "How likely are you to recommend us to a friend?",
                "de": "Wie wahrscheinlich ist es, dass Sie uns weiterempfehlen?",
            },
        },
        {
            "key": "liked",
            "kind": "multiple",
            "text": "What did you like?",
            "choices": [{"value": "price", "label": {"en": "Price", "de": "Preis"}}, "Support", "Speed"],
        },
        {"key": "why", "kind": "text", "text": {"en": "Why?", "de": "Warum?"}},
    ],
}


@pytest.fixture
def crm_plugins() -> list[str]:
    return ["surveys"]


@pytest.fixture
def data() -> Path:
    """The folder of definition files."""
    return DATA


@pytest.fixture
def service(crm: Any) -> Any:
    """``surveys(crm)``: surveys and answers."""
    return surveys(crm)


@pytest.fixture
def nps_definition() -> dict[str, Any]:
    """An NPS survey: the score, liked options, a free text."""
    import copy

    return copy.deepcopy(NPS)


@pytest.fixture
def nps(service: Any, nps_definition: dict[str, Any]) -> Any:
    """The NPS survey, active."""
    service.surveys.create(nps_definition)
    return service.surveys.activate("nps")


def make_customer(crm: Any, email: str, **fields: Any) -> Any:
    """A contact who agreed to surveys by email (consent for purpose ``surveys``)."""
    contact = crm.leads.capture(email=email, **fields)
    crm.consent.grant(contact.id, "surveys", "email", source="test")
    return contact


@pytest.fixture
def customer() -> Any:
    """``customer(crm, email, **fields)``: capture a contact with consent to surveys by email."""
    return make_customer


@pytest.fixture
def ada(crm: Any) -> Any:
    """A customer with an email and consent to surveys."""
    return make_customer(crm, "ada@example.com", first_name="Ada", last_name="Lovelace")

"""Fixtures of the email marketing tests: a segment hook, templates, contacts, a real SMTP server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from crmcore_email_marketing import email_marketing
from sqlalchemy import select

from crmcore import hookimpl
from crmcore.models import Contact

DATA = Path(__file__).resolve().parent / "data"


class TestSegments:
    """Segments for the tests: ``everyone``, ``nobody``, ``germans`` (what the contacts plugin answers in real use)."""

    @hookimpl
    def crm_segment_query(self, name: str, ctx: Any) -> Any:
        if name == "everyone":
            return select(Contact.id)
        if name == "nobody":
            return select(Contact.id).where(Contact.id < 0)
        if name == "germans":
            return select(Contact.id).where(Contact.country == "DE")
        return None

    @hookimpl
    def crm_segment_names(self, ctx: Any) -> list[str]:
        return ["everyone", "germans", "nobody"]


@pytest.fixture
def crm_plugins() -> list[Any]:
    return ["email_marketing", TestSegments()]


@pytest.fixture
def email_settings() -> dict[str, Any]:
    """The plugin's settings for a test; override per module."""
    return {"consent_regime": "opt_out", "batch_size": 3, "fill_chunk": 5, "commit_every": 2}


@pytest.fixture
def crm_settings(smtp_settings: dict[str, Any], email_settings: dict[str, Any]) -> dict[str, Any]:
    return {**smtp_settings, "base_url": "https://crm.example.com", "mail_from": "News <news@example.com>",
            "plugin_settings": {"email_marketing": email_settings}}  # fmt: skip


@pytest.fixture
def em(crm: Any) -> Any:
    """``email_marketing(crm)``."""
    return email_marketing(crm)


@pytest.fixture
def newsletter(em: Any) -> Any:
    """A template with personalization, a fallback, a custom field and a link."""
    return em.templates.create(
        "newsletter",
        subject="News for {{ contact.first_name or 'you' }}",
        html=(
            "<h1>Hello {{ contact.first_name or 'there' }}</h1>\n"
            "<p>Our spring offers are here.</p>\n"
            '<p><a href="https://shop.example.com/spring?a=1&amp;b=2">Shop now</a></p>\n'
        ),
    )


@pytest.fixture
def people(crm: Any) -> list[Any]:
    """Seven contacts (one without email, one who asked not to be contacted)."""
    made = []
    for index, name in enumerate(["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald"], start=1):
        made.append(crm.contacts.add(email=f"{name.lower()}@example.com", first_name=name,
                                        country="DE" if index % 2 else "US"))  # fmt: skip
    made.append(crm.contacts.add(first_name="Nomail", phone="+4930123456"))
    return made


def load_eml(name: str) -> bytes:
    """The bytes of a real message under tests/data."""
    return (DATA / name).read_bytes()

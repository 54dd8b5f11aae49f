"""Shared test plugins for the core's tests."""

from __future__ import annotations

from typing import Any

import pytest

from crmcore import hookimpl
from crmcore.errors import ValidationError


class Recorder:
    """A plugin that records the lifecycle hooks it sees, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    @hookimpl
    def crm_lead_captured(self, event: Any, ctx: Any) -> None:
        self.seen.append(("captured", event))

    @hookimpl
    def crm_customer_converted(self, event: Any, ctx: Any) -> None:
        self.seen.append(("converted", event))


class VetoGmail:
    """Refuses leads with a gmail.com address."""

    @hookimpl
    def crm_lead_before_capture(self, contact: Any, ctx: Any) -> None:
        if contact.email_normalized and contact.email_normalized.endswith("@gmail.com"):
            raise ValidationError({"email": "we do not take free-mail leads"})


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()

"""Fixtures of the ticketing tests: the services, agents, a Berlin business calendar, policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from crmcore_ticketing import ticketing

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def crm_plugins() -> list[str]:
    return ["ticketing"]


@pytest.fixture
def ticketing_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """The plugin's settings; change them with ``parametrize(..., indirect=True)`` (``{tmp}``: tmp_path)."""
    defaults = {"attachment_dir": str(tmp_path / "attachments"), "support_address": "support@example.com"}
    given = {k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v
             for k, v in getattr(request, "param", {}).items()}  # fmt: skip
    return {**defaults, **given}


@pytest.fixture
def crm_settings(ticketing_settings: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    return {"plugin_settings": {"ticketing": ticketing_settings}, "mail_dir": str(tmp_path / "outbox")}


@pytest.fixture
def support(crm: Any) -> Any:
    """``ticketing(crm)``: tickets, sla, contracts, kb, mail."""
    return ticketing(crm)


@pytest.fixture
def agent(crm: Any) -> Any:
    return crm.users.add("agent@example.com", "Alex Agent", role="agent")


@pytest.fixture
def lead_agent(crm: Any) -> Any:
    return crm.users.add("lead@example.com", "Lee Lead", role="manager")


@pytest.fixture
def berlin(support: Any) -> Any:
    """Mon-Fri 09:00-12:00 and 13:00-17:00 Berlin time, with Berlin's public holidays."""
    return support.sla.add_calendar(
        "Berlin office", timezone="Europe/Berlin", hours="mon-fri 09:00-12:00,13:00-17:00", holidays="DE", region="BE"
    )


@pytest.fixture
def standard_policy(support: Any, berlin: Any) -> Any:
    """The catch-all policy: first reply 4h, next reply 8h, resolution 24h of business time."""
    return support.sla.add_policy(
        "Standard", calendar="Berlin office",
        targets={"*": {"first_reply": "4h", "next_reply": "8h", "resolution": "24h"}},
    )  # fmt: skip


def load_eml(name: str, replace: dict[str, str] | None = None) -> bytes:
    """A fixture message's bytes, with placeholders (``TK-0000-0000``, ids) replaced."""
    raw = (DATA / name).read_bytes()
    for old, new in (replace or {}).items():
        raw = raw.replace(old.encode(), new.encode())
    return raw


@pytest.fixture
def eml() -> Any:
    """``eml("name.eml", {"placeholder": "value"})``: the bytes of a message under tests/data."""
    return load_eml


@pytest.fixture
def mail_data() -> Path:
    """The folder of real .eml messages the tests ingest."""
    return DATA

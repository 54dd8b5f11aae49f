"""The welcome plugin, tested with crmcore's shipped fixtures."""

import pytest

from crmcore.migrate import branch_heads, schema_diff


@pytest.fixture
def crm_plugins():
    return ["welcome"]


@pytest.fixture
def crm_settings(smtp_settings):
    return smtp_settings


def test_a_new_lead_gets_one_welcome(crm, smtp_server, run_due_jobs, cli):
    crm.leads.capture(email="ada@example.com", first_name="Ada")
    crm.leads.capture(email="ada@example.com")  # known: no second welcome
    run_due_jobs()
    [message] = smtp_server.to("ada@example.com")
    assert message["Subject"] == "Welcome!"
    assert "Hello Ada," in message.get_content()
    assert cli("welcome", "count").output.strip() == "1"


def test_the_branch_has_one_head_and_matches_the_models(crm):
    assert branch_heads(crm, "welcome") == ["welcome_0001"]
    assert schema_diff(crm) == []

"""Plugin discovery, dependencies, validation, published hookspecs, tracing and errors."""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crmcore import CRM
from crmcore.errors import ConfigError, PluginError, ValidationError
from crmcore.models import Contact
from crmcore.plugins import installed_entry_points

from .conftest import VetoGmail

SAMPLES = Path(__file__).parent / "sample_plugins"


@pytest.fixture
def fake_plugins(monkeypatch):
    """Install the sample plugins as if they were distributions with entry points."""
    monkeypatch.syspath_prepend(str(SAMPLES))
    real = installed_entry_points()
    fakes = {
        path.stem: EntryPoint(name=path.stem, value=path.stem, group="crmcore") for path in SAMPLES.glob("crmtest_*.py")
    }
    monkeypatch.setattr("crmcore.plugins.installed_entry_points", lambda: {**real, **fakes})
    return fakes


def test_installed_plugins_are_discovered():
    names = set(installed_entry_points())
    assert {"ticketing", "email_marketing", "surveys", "accounting_bridge"} <= names


def test_no_list_enables_every_installed_plugin(tmp_path):
    crm = CRM(database_url=f"sqlite:///{tmp_path}/a.db", environment="test")
    assert {"ticketing", "email_marketing", "surveys", "accounting_bridge"} <= set(crm.plugins.names)


def test_unknown_plugin_name_lists_the_installed_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown plugin .ticketting.; installed plugins: .*ticketing"):
        CRM(database_url=f"sqlite:///{tmp_path}/a.db", plugins=["ticketting"])


def test_plugin_failing_at_import_names_distribution_and_entry_point(tmp_path, fake_plugins):
    with pytest.raises(PluginError) as info:
        CRM(database_url=f"sqlite:///{tmp_path}/a.db", plugins=["crmtest_boom"])
    assert "crmtest_boom" in str(info.value)
    assert "entry point 'crmtest_boom = crmtest_boom'" in str(info.value)
    assert "the plugin's import exploded" in str(info.value)


def test_misspelt_hook_name_is_refused_with_a_suggestion(tmp_path, fake_plugins):
    with pytest.raises(PluginError) as info:
        CRM(database_url=f"sqlite:///{tmp_path}/a.db", plugins=["crmtest_typo"])
    message = str(info.value)
    assert "plugin 'crmtest_typo'" in message
    assert "crm_lead_capturd" in message and "did you mean crm_lead_captured" in message


def test_wrong_hook_argument_is_refused_naming_the_plugin(tmp_path, fake_plugins):
    with pytest.raises(PluginError, match=r"plugin 'crmtest_badargs'.*lead"):
        CRM(database_url=f"sqlite:///{tmp_path}/a.db", plugins=["crmtest_badargs"])


def test_missing_dependency_is_a_startup_error(tmp_path, fake_plugins):
    with pytest.raises(ConfigError, match=r"plugin .crmtest_needy. requires plugin.*crmtest_publisher"):
        CRM(database_url=f"sqlite:///{tmp_path}/a.db", plugins=["crmtest_needy"])


def test_plugins_publish_hookspecs_that_others_implement(crm_factory, fake_plugins):
    import crmtest_listener

    crmtest_listener.greeted.clear()
    crm = crm_factory(plugins=["crmtest_listener", "crmtest_publisher"])
    lead = crm.leads.capture(email="ada@example.com")
    assert crmtest_listener.greeted == [lead.id]


def test_failing_hook_rolls_back_and_names_plugin_and_hook(crm_factory, fake_plugins):
    crm = crm_factory(plugins=["crmtest_raiser"])
    with pytest.raises(PluginError) as info:
        crm.leads.capture(email="ada@example.com")
    assert info.value.plugin == "crmtest_raiser" and info.value.hook == "crm_lead_captured"
    assert "KeyError" in str(info.value)
    assert isinstance(info.value.__cause__, KeyError)
    with crm.transaction() as ctx:
        assert ctx.session.scalar(select(func.count(Contact.id))) == 0


def test_before_hook_vetoes_with_a_validation_error_naming_the_plugin(crm_factory):
    crm = crm_factory(plugins=[VetoGmail()])
    with pytest.raises(ValidationError) as info:
        crm.leads.capture(email="someone@gmail.com")
    assert info.value.errors == {"email": "we do not take free-mail leads"}
    assert info.value.plugin == "VetoGmail" and info.value.hook == "crm_lead_before_capture"
    assert crm.contacts.list() == []
    assert crm.leads.capture(email="someone@example.com").id


def test_trace_mode_logs_each_hook_call_with_its_timing(crm_factory, caplog):
    crm = crm_factory(trace_hooks=True)
    with caplog.at_level(logging.INFO, logger="crmcore.hooks"):
        crm.leads.capture(email="ada@example.com")
    lines = [r.getMessage() for r in caplog.records if r.name == "crmcore.hooks"]
    assert any(line.startswith("hook crm_lead_captured [") and line.endswith(" ms") for line in lines)
    assert any("crm_owner_assign [core]" in line for line in lines)


def test_plugins_list_shows_a_broken_plugin_and_still_works(tmp_path, fake_plugins, monkeypatch):
    from click.testing import CliRunner

    from crmcore.cli import build_cli

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        build_cli(), ["--plugins", "crmtest_boom,ticketing", "plugins", "list", "--format", "json"]
    )
    import json

    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["crmtest_boom"]["status"] == "broken"
    assert "import exploded" in rows["crmtest_boom"]["error"]
    assert rows["ticketing"]["status"] == "enabled"
    assert rows["surveys"]["status"] == "disabled"
    assert result.exit_code == 1


def test_core_defaults_are_trylast_so_plugins_override_them(crm_factory):
    from crmcore import hookimpl

    class AlwaysRita:
        @hookimpl
        def crm_owner_assign(self, contact, ctx):
            return rita.id

    crm = crm_factory(plugins=[AlwaysRita()])
    crm.users.add("bob@example.com", "Bob")
    rita = crm.users.add("rita@example.com", "Rita")
    assert crm.leads.capture(email="ada@example.com").owner_id == rita.id

"""The CRM object: settings, isolation between instances, start-up errors."""

from __future__ import annotations

import pytest

from crmcore import CRM
from crmcore.errors import ConfigError
from crmcore.settings import Settings

from .conftest import Recorder


def test_two_crms_in_one_process_share_nothing(crm_factory):
    first_plugin, second_plugin = Recorder(), Recorder()
    first = crm_factory(plugins=[first_plugin])
    second = crm_factory(plugins=["ticketing", second_plugin])

    first.leads.capture(email="ada@example.com")

    assert [name for name, _ in first_plugin.seen] == ["captured"]
    assert second_plugin.seen == []
    assert second.contacts.list() == []
    assert first.plugins.pm is not second.plugins.pm
    assert first.engine is not second.engine
    assert not first.plugins.is_enabled("ticketing") and second.plugins.is_enabled("ticketing")
    assert first.templates is not second.templates


def test_settings_come_from_keywords_environment_and_toml(tmp_path, monkeypatch):
    config = tmp_path / "crm.toml"
    config.write_text('timezone = "Europe/Berlin"\ncurrency = "EUR"\n[plugins.ticketing]\nx = 1\n')
    monkeypatch.setenv("CRMCORE_CURRENCY", "GBP")
    settings = Settings.load(config, database_url="sqlite:///other.db")
    assert settings.timezone == "Europe/Berlin"  # from the file
    assert settings.currency == "GBP"  # the environment beats the file
    assert settings.database_url == "sqlite:///other.db"  # keywords beat both
    assert settings.for_plugin("ticketing") == {"x": 1}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"environment": "production"}, "default secret key is refused"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"jobs_backend": "carrier-pigeon"}, "jobs_backend"),
        ({"colour": "blue"}, "unknown setting(s): colour"),
    ],
)
def test_bad_settings_are_clear_errors(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.load(environ={}, **options)


def test_unreachable_database_is_a_clear_error():
    crm = CRM(database_url="postgresql://nobody@127.0.0.1:1/nowhere", plugins=[])
    with pytest.raises(ConfigError, match="cannot reach the database"):
        crm.contacts.list()


def test_sqlite_file_in_a_missing_folder_is_a_clear_error(tmp_path):
    crm = CRM(database_url=f"sqlite:///{tmp_path}/missing/dir/crm.db", plugins=[])
    with pytest.raises(ConfigError, match="cannot reach the database"):
        crm.contacts.list()

"""What a ``crm`` command loads: only what it needs (issue 2's start-up contract).

Each check runs a fresh process, as a user would, with every installed plugin
enabled; imports made earlier by this test process cannot hide a regression.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crmcore import CRM

CRM_SCRIPT = Path(sys.executable).with_name("crm")
#: The web stack and Celery: a command that serves no page and queues no task never imports them.
FORBIDDEN = {"starlette", "uvicorn", "celery", "kombu"}


@pytest.fixture
def database(tmp_path):
    """A migrated SQLite file (every installed plugin) with one lead."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    crm = CRM(database_url=url, environment="test")
    crm.db_upgrade()
    crm.leads.capture(email="ada@example.com")
    crm.dispose()
    return url


def _imported_packages(stderr: str) -> set[str]:
    """Top-level packages named in ``-X importtime`` output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_contact_show_imports_neither_the_web_stack_nor_celery(database):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMCORE_")}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(CRM_SCRIPT), "--database-url", database,
         "contact", "show", "ada@example.com", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"email": "ada@example.com"' in result.stdout
    imported = _imported_packages(result.stderr)
    assert "sqlalchemy" in imported and "crmcore_accounting_bridge" in imported  # the check sees the imports
    assert imported & FORBIDDEN == set()
    modules = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "crmcore.services.base" in modules  # the services are loaded...
    assert "crmcore.rollup_marks" not in modules  # ...not the reports' rollups: only a merge marks them


def test_a_plugin_command_uses_the_root_options_and_imports_neither(database):
    """``crm --database-url URL ticket list``: the plugin's command is found, runs on that database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMCORE_")}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(CRM_SCRIPT), "--database-url", database,
         "ticket", "list", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
    imported = _imported_packages(result.stderr)
    assert "crmcore_ticketing" in imported
    assert imported & FORBIDDEN == set()


def test_a_fresh_process_compares_every_enabled_plugins_tables(database):
    """Plugins import their models lazily; the schema check still sees all of them."""
    script = (
        "import sys; from crmcore import CRM; from crmcore.migrate import schema_diff; "
        "crm = CRM(database_url=sys.argv[1], environment='test'); print(schema_diff(crm))"
    )
    result = subprocess.run([sys.executable, "-c", script, database], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"

"""Testing kit for crmcore and plugin authors (the ``crmcore`` pytest plugin).

Installed with crmcore and loaded by pytest through the ``pytest11`` entry
point. Fixtures: ``crm`` (a throwaway, migrated CRM), ``crm_factory``,
``clock`` (frozen), ``hook_calls``, ``cli``, ``run_due_jobs``. Override
``crm_plugins`` (a list of plugin names or objects) and ``crm_settings`` (a
dict of settings) in your ``conftest.py`` to choose what the CRM loads.
"""

from crmcore.testing.helpers import HookCalls, run_cli

__all__ = ["HookCalls", "require_program", "run_cli"]


def require_program(name: str) -> str:
    """The path of program *name*; skip the test when it is missing (fail under CI).

    CI sets ``CRMCORE_TEST_REQUIRE_SERVERS=1`` so that a missing browser or
    tool fails loudly instead of silently skipping.
    """
    import os
    import shutil

    import pytest

    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install {name}; `make test` installs it as root)"
        if os.environ.get("CRMCORE_TEST_REQUIRE_SERVERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path

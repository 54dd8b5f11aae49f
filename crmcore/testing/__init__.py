"""Testing kit for crmcore and plugin authors (the ``crmcore`` pytest plugin).

Installed with crmcore and loaded by pytest through the ``pytest11`` entry
point. Fixtures: ``crm`` (a throwaway, migrated CRM), ``crm_factory``,
``clock`` (frozen), ``hook_calls``, ``cli``, ``run_due_jobs``. Override
``crm_plugins`` (a list of plugin names or objects) and ``crm_settings`` (a
dict of settings) in your ``conftest.py`` to choose what the CRM loads.
"""

from crmcore.testing.helpers import HookCalls, run_cli

__all__ = ["HookCalls", "run_cli"]

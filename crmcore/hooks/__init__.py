"""Hook specifications: crmcore's public contract with plugins.

One module per area of the lifecycle. Implement a hook with :data:`hookimpl`::

    from crmcore import hookimpl

    @hookimpl
    def crm_lead_captured(event, ctx):
        ...

The reference in ``docs/hooks.md`` is generated from these docstrings.
"""

from __future__ import annotations

import pluggy

#: Marks a hook specification (for crmcore and for plugins publishing their own).
hookspec = pluggy.HookspecMarker("crmcore")
#: Marks a hook implementation.
hookimpl = pluggy.HookimplMarker("crmcore")

#: The core's specification modules, in reference order.
SPEC_MODULES = (
    "crmcore.hooks.setup",
    "crmcore.hooks.cli",
    "crmcore.hooks.leads",
    "crmcore.hooks.contacts",
    "crmcore.hooks.customers",
    "crmcore.hooks.sales",
    "crmcore.hooks.jobs",
    "crmcore.hooks.mail",
    "crmcore.hooks.web",
    "crmcore.hooks.reports",
    "crmcore.hooks.bundles",
    "crmcore.hooks.demo",
    "crmcore.hooks.console",
)

__all__ = ["SPEC_MODULES", "hookimpl", "hookspec"]

"""crmcore: an embeddable CRM framework.

A minimal core that models the lead-to-customer lifecycle and fires pluggy
hooks at every step::

    from crmcore import CRM

    crm = CRM(database_url="sqlite:///crm.db")
    lead = crm.leads.capture(email="ada@example.com", touch={"kind": "form"})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore.hooks import hookimpl, hookspec

__version__ = "0.1.0"

if TYPE_CHECKING:
    from crmcore.crm import CRM
    from crmcore.plugins import PluginInfo

__all__ = ["CRM", "PluginInfo", "__version__", "hookimpl", "hookspec"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import crmcore` (and a plugin's `from crmcore import hookimpl`)
    # stays cheap for the CLI's start-up.
    if name == "CRM":
        from crmcore.crm import CRM

        return CRM
    if name == "PluginInfo":
        from crmcore.plugins import PluginInfo

        return PluginInfo
    raise AttributeError(name)

"""The hook listeners that start sequences, registered at start-up.

Kept apart from :mod:`crmcore_email_marketing.automation` so that registering
them imports no models: a listener imports the automation when its hook fires.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore import hookimpl

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM


def has_spec(crm: CRM, hook: str) -> bool:
    """True when some enabled plugin (or the core) publishes *hook*."""
    caller = getattr(crm.plugins.pm.hook, hook, None)
    return caller is not None and caller.spec is not None


def install_triggers(crm: CRM) -> None:
    """Register a listener for every configured hook that exists (a dynamic plugin, ``email_marketing.triggers``)."""
    listeners: dict[str, Any] = {}
    for hook in crm.plugin_setting("email_marketing", "sequence_hooks"):
        if not hook.isidentifier() or not hook.startswith("crm_") or not has_spec(crm, hook):
            continue
        argnames = getattr(crm.plugins.pm.hook, hook).spec.argnames
        if "ctx" not in argnames or "event" not in argnames:
            continue
        listeners[hook] = _listener(hook)
    if listeners and not crm.plugins.pm.has_plugin("email_marketing.triggers"):
        crm.plugins.pm.register(type("SequenceTriggers", (), listeners)(), name="email_marketing.triggers")


def _listener(hook: str) -> Any:
    def listen(self: Any, event: Any, ctx: HookContext) -> None:
        from crmcore_email_marketing.automation import on_trigger

        on_trigger(ctx, hook, event)

    listen.__name__ = hook
    return hookimpl(listen)

"""A plugin that publishes its own hook specification and fires it."""

from crmcore import hookimpl, hookspec
from crmcore.plugins import PluginInfo


class Specs:
    @hookspec
    def crm_publisher_greeted(self, contact_id: int, ctx) -> None:
        """A greeting was sent to a new lead.

        .. versionadded:: 0.1
        """


plugin_info = PluginInfo(hookspecs=(Specs,))


@hookimpl
def crm_lead_captured(event, ctx):
    ctx.call("crm_publisher_greeted", contact_id=event.contact_id)

"""A plugin that implements the publisher's hook."""

from crmcore import hookimpl
from crmcore.plugins import PluginInfo

plugin_info = PluginInfo(requires=("crmtest_publisher",))
greeted: list[int] = []


@hookimpl
def crm_publisher_greeted(contact_id, ctx):
    greeted.append(contact_id)

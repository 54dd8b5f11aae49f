"""A plugin that requires another plugin."""

from crmcore.plugins import PluginInfo

plugin_info = PluginInfo(requires=("crmtest_publisher",))

"""A plugin whose after-hook fails."""

from crmcore import hookimpl


@hookimpl
def crm_lead_captured(event, ctx):
    raise KeyError("webhook-url")

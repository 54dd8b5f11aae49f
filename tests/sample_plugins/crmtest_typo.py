"""A plugin with a misspelt hook name."""

from crmcore import hookimpl


@hookimpl
def crm_lead_capturd(event, ctx):
    pass

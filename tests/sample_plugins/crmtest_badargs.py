"""A plugin whose hook takes an argument the spec does not have."""

from crmcore import hookimpl


@hookimpl
def crm_lead_captured(event, ctx, lead):
    pass

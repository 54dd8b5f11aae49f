"""crmcore-surveys: NPS, CSAT and CES surveys sent on lifecycle events and answered on the web."""

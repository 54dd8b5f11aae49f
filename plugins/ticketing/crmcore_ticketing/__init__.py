"""crmcore-ticketing: Multichannel tickets, SLA timers on business hours, knowledge base, service contracts."""

"""crmcore-welcome: welcomes every new lead by email and keeps a log."""

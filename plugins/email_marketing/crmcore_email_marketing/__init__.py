"""crmcore-email-marketing: Email campaigns with budgets and ROI, tracked sending over SMTP, automation sequences."""

"""A vendor bundle for dental clinics (an example of ``crm bundle apply``)."""

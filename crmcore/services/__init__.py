"""Services: every lifecycle operation as one unit of work.

One module per area; :class:`crmcore.CRM` imports each on first use.
"""

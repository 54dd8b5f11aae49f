"""crmcore-accounting-bridge: Invoices and double-entry journals from sales, exported to accounting tools."""

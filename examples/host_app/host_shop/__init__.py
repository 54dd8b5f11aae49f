"""A small shop that embeds crmcore (the example of docs/embedding.md)."""

"""Alembic environment for crmcore and its plugins (driven by :mod:`crmcore.migrate`)."""

from __future__ import annotations

from alembic import context

from crmcore.db import Base
from crmcore.migrate import include_object_for

attributes = context.config.attributes
connection = attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    include_object=include_object_for(set(attributes["owners"]), attributes["all_plugins"]),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

"""How crmcore's engines treat server connections: idle ones are checked, PostgreSQL plans with values."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from crmcore.db import ping_when_idle

SERVER_ID = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}
DROP = {"postgresql": "SELECT pg_terminate_backend({})", "mysql": "KILL {}"}


def _drop_pooled_connection(crm, engine) -> int:
    """Open and return a connection to *engine*'s pool, then have the server drop it; its server-side id."""
    backend = engine.dialect.name if engine.dialect.name == "postgresql" else "mysql"
    with engine.connect() as connection:
        dropped = connection.execute(text(SERVER_ID[backend])).scalar()
    with crm.engine.connect() as admin:
        admin.execute(text(DROP[backend].format(int(dropped))))
        admin.commit()
    return int(dropped)


@pytest.mark.databases("postgresql", "mariadb")
def test_a_pooled_connection_the_server_dropped_is_replaced_before_use(crm):
    url = crm.engine.url
    checked = create_engine(url)
    ping_when_idle(checked, seconds=0)  # every connection back in the pool counts as idle
    unchecked = create_engine(url)
    backend = "postgresql" if checked.dialect.name == "postgresql" else "mysql"
    try:
        dropped = _drop_pooled_connection(crm, checked)
        with checked.connect() as connection:  # the ping finds the dropped one; the pool opens another
            assert connection.execute(text(SERVER_ID[backend])).scalar() != dropped
        _drop_pooled_connection(crm, unchecked)
        with pytest.raises(DBAPIError), unchecked.connect() as connection:  # without it the request fails
            connection.execute(text("SELECT 1"))
    finally:
        checked.dispose()
        unchecked.dispose()


@pytest.mark.databases("postgresql")
def test_postgresql_plans_every_statement_with_its_values(crm):
    with crm.engine.connect() as connection:
        assert connection.execute(text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"

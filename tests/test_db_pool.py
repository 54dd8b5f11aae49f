"""The connection pool on database servers: a connection that died while idle is replaced before use."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import exc, text
from sqlalchemy.engine import Connection, Engine

from crmcore.db import create_engine


def _backend_id(connection: Connection) -> int:
    query = "SELECT pg_backend_pid()" if connection.dialect.name == "postgresql" else "SELECT CONNECTION_ID()"
    return int(connection.execute(text(query)).scalar_one())


def _kill(admin: Engine, backend_id: int) -> None:
    """End the server side of a connection and wait until the server has dropped it."""
    with admin.connect() as connection:
        if admin.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_id})
            alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
        else:
            connection.execute(text(f"KILL {int(backend_id)}"))
            alive = text("SELECT count(*) FROM information_schema.processlist WHERE id = :pid")
        deadline = time.monotonic() + 10
        while connection.execute(alive, {"pid": backend_id}).scalar_one() and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.mark.databases("postgresql", "mariadb")  # SQLite has no server connection to lose
def test_a_connection_that_died_while_idle_is_replaced_before_use(crm: Any) -> None:
    admin: Engine = crm.engine
    engine = create_engine(crm.engine.url, ping_after_idle=0.0)
    try:
        with engine.connect() as connection:
            first = _backend_id(connection)
        _kill(admin, first)
        time.sleep(0.01)
        with engine.connect() as connection:  # pinged at checkout, found dead, replaced: no error
            assert _backend_id(connection) != first
    finally:
        engine.dispose()


@pytest.mark.databases("postgresql", "mariadb")
def test_a_connection_used_a_moment_ago_is_not_pinged_and_its_death_renews_the_pool(crm: Any) -> None:
    admin: Engine = crm.engine
    engine = create_engine(crm.engine.url, ping_after_idle=60.0)
    try:
        with engine.connect() as connection:
            first = _backend_id(connection)
        _kill(admin, first)
        with engine.connect() as connection, pytest.raises(exc.DBAPIError) as caught:
            _backend_id(connection)  # no ping: the statement meets the dead connection, an error, nothing silent
        assert caught.value.connection_invalidated
        with engine.connect() as connection:
            assert _backend_id(connection) != first
    finally:
        engine.dispose()

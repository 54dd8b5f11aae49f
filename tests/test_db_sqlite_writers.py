"""SQLite writers of one engine queue in the process instead of sleeping in SQLite's busy handler.

The lock is taken before ``BEGIN IMMEDIATE`` and given back after ``COMMIT``,
``ROLLBACK`` or a close, whatever ends the transaction; read-only work never takes it.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from crmcore import db


@pytest.fixture
def engine(tmp_path, monkeypatch):
    monkeypatch.setattr(db, "SQLITE_BUSY_SECONDS", 2)  # a leaked lock would cost 2 s, not 30
    engine = db.create_engine(f"sqlite:///{tmp_path / 'writers.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    yield engine
    engine.dispose()


def holds(connection) -> bool:
    return connection.connection.dbapi_connection.holds_write_lock


def write_alone(engine) -> float:
    """Seconds one write transaction takes (about a millisecond unless it waits)."""
    start = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
    return time.perf_counter() - start


def test_a_write_transaction_holds_the_queue_until_commit_or_rollback(engine):
    with engine.connect() as connection:
        with connection.begin():
            connection.execute(text("INSERT INTO t VALUES (1)"))
            assert holds(connection)
        assert not holds(connection)
        transaction = connection.begin()
        connection.execute(text("INSERT INTO t VALUES (2)"))
        transaction.rollback()
        assert not holds(connection)
    with engine.connect().execution_options(sqlite_immediate=False) as reader:
        reader.execute(text("SELECT count(*) FROM t")).scalar()
        assert not holds(reader)
    assert write_alone(engine) < 1


def test_a_failed_statement_or_a_dropped_connection_frees_the_queue(engine):
    with pytest.raises(Exception, match="no such table"):
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO missing VALUES (1)"))
    assert write_alone(engine) < 1

    connection = engine.connect()
    connection.begin()
    connection.execute(text("INSERT INTO t VALUES (3)"))
    connection.invalidate()  # the DBAPI connection is closed mid-transaction
    assert write_alone(engine) < 1
    with engine.connect() as reader:
        assert reader.execute(text("SELECT count(*) FROM t WHERE n = 3")).scalar() == 0


def test_a_second_writer_waits_for_the_first_and_then_runs(engine):
    first_inside, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (10)"))
            first_inside.set()
            release.wait(5)
            order.append("first commits")

    thread = threading.Thread(target=first)
    thread.start()
    assert first_inside.wait(5)
    second = threading.Thread(target=lambda: (write_alone(engine), order.append("second done")))
    second.start()
    time.sleep(0.2)
    assert order == []  # the second writer is waiting, not failing
    release.set()
    thread.join(5)
    second.join(5)
    assert order == ["first commits", "second done"]
    with engine.connect() as reader:
        assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 2


def test_a_callers_own_connection_class_is_kept(tmp_path):
    import sqlite3

    class Own(sqlite3.Connection):
        pass

    engine = db.create_engine(f"sqlite:///{tmp_path / 'own.db'}", connect_args={"factory": Own})
    try:
        with engine.begin() as connection:  # no queue: SQLite's busy handler alone
            connection.execute(text("CREATE TABLE t (n INTEGER)"))
            assert type(connection.connection.dbapi_connection) is Own
    finally:
        engine.dispose()

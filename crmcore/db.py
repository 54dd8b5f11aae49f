"""The declarative base, portable column types and engine creation.

Every table, the core's and the plugins', lives on :class:`Base`. Plugin tables
carry the plugin's name as prefix (``ticketing_ticket``); that prefix is how
migrations and schema checks tell them apart.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, Numeric, event
from sqlalchemy.engine import URL, Dialect, Engine, make_url
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from crmcore.errors import ConfigError

if TYPE_CHECKING:
    import sqlite3

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The one declarative base of crmcore and its plugins."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


@event.listens_for(Base, "before_configured")
def _load_foreign_key_targets(*_registry: object) -> None:
    """Before the mappers are configured, map the core tables that mapped tables point to.

    The core's models load by submodule on first use (:mod:`crmcore.models`);
    a plugin's tables may be mapped before the core tables they reference.
    """
    from crmcore.models import load_foreign_key_targets

    load_foreign_key_targets()


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    SQLite and MariaDB keep no zone, so values are stored as naive UTC and the
    zone is put back on load; naive input is refused rather than guessed.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(DateTime(timezone=True))
        if dialect.name in {"mysql", "mariadb"}:
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: crmcore stores aware UTC times only")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: Money and prices: exact decimals, never float.
Money = Numeric(18, 4, asdecimal=True)
#: An auto-incrementing 64-bit key that SQLite also accepts as its rowid alias.
BigID = BigInteger().with_variant(Integer(), "sqlite")
#: Free-form structured data (custom fields, payloads), portable across databases.
JSONData = JSON()

_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def normalize_url(url: str | URL) -> URL:
    """Pick the driver crmcore supports when *url* names only the database kind."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"invalid database URL {str(url)!r}: {exc}") from None
    if parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    if parsed.get_backend_name() in {"mysql", "mariadb"} and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def create_engine(url: str | URL, *, ping_after_idle: float | None = None, **kwargs: Any) -> Engine:
    """Create an engine configured the way crmcore needs it on each database.

    On SQLite: WAL journal, foreign keys on, a busy timeout, and transactions
    opened with ``BEGIN IMMEDIATE`` so that two writers never deadlock on a
    lock upgrade (pysqlite's own transaction handling is off); the engine's
    writers queue in the process (:func:`_writer_queue_connection`). Read-only
    work passes the execution option ``sqlite_immediate=False`` and gets a
    plain ``BEGIN``, so readers never wait for a writer (WAL). On a database server,
    a pooled connection is pinged before use when it sat idle for more than
    *ping_after_idle* seconds (default :data:`PING_AFTER_IDLE_SECONDS`); pass
    ``pool_pre_ping`` instead for SQLAlchemy's ping on every checkout, or none.
    """
    from sqlalchemy import create_engine as sa_create_engine

    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        connect_args = kwargs.setdefault("connect_args", {})
        connect_args.update({"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS})
        if "factory" not in connect_args:  # a caller's own connection class keeps SQLite's busy handler alone
            connect_args["factory"] = _writer_queue_connection()
        engine = sa_create_engine(parsed, **kwargs)
        _configure_sqlite(engine)
        return engine
    if backend in {"mysql", "mariadb"}:
        kwargs.setdefault("isolation_level", "READ COMMITTED")
    # SQLAlchemy's default keeps 5 connections and closes any other one when it is given back:
    # with more requests than that in flight (the web app's thread pool), every burst opened new
    # server sessions, each a process to start on PostgreSQL. Same ceiling (15), more kept.
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", max(0, POOL_MAX - kwargs["pool_size"]))
    own_ping = "pool_pre_ping" in kwargs  # the caller chose SQLAlchemy's own ping (on every checkout) or none
    engine = sa_create_engine(parsed, **kwargs)
    if backend == "postgresql":
        event.listen(engine, "connect", _plan_with_values)
    if not own_ping:
        _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS if ping_after_idle is None else ping_after_idle)
    return engine


def _plan_with_values(dbapi_connection: Any, _record: Any) -> None:
    """Plan every statement with its values (``plan_cache_mode = force_custom_plan``, PostgreSQL 12+).

    psycopg prepares any statement run five times, and PostgreSQL may then
    switch to a generic plan made without the values. For crmcore's searches
    that is a trap: ``name ILIKE $1 ORDER BY id DESC LIMIT 20`` planned
    without the pattern walks the primary key backwards through every row
    instead of using the trigram index (a hundredfold slower for a rare
    pattern). Custom plans keep the parse savings of prepared statements.
    """
    info = getattr(dbapi_connection, "info", None)
    version: int = getattr(info, "server_version", None) or getattr(dbapi_connection, "server_version", 0) or 0
    if version < 120000:
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET plan_cache_mode = force_custom_plan")
    finally:
        cursor.close()
    dbapi_connection.commit()


#: Connections a pool keeps open on a database server, and the most it opens at once.
POOL_SIZE, POOL_MAX = 10, 15
#: A pooled connection unused for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine, after: float) -> None:
    """Ping a pooled connection at checkout only when it sat idle for more than *after* seconds.

    SQLAlchemy's ``pool_pre_ping`` costs a round trip on every checkout, one
    in four of a short link's statements. A connection given back a moment
    ago is alive but for a server restart in that moment, and then the
    request fails with an error (never a silent loss) and SQLAlchemy renews
    the whole pool, as it does for a connection that dies mid-transaction.
    A connection that sat idle (a quiet hour, a restart since) is pinged,
    and a dead one is replaced before use (the pool's documented
    ``DisconnectionError`` protocol).
    """
    import time

    from sqlalchemy.exc import DisconnectionError

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["crmcore_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("crmcore_idle_since")  # None: a new connection (info is per connection)
        if idle_since is None or time.monotonic() - idle_since <= after:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, dbapi_connection, None):
                raise DisconnectionError(str(exc)) from exc
            raise


#: How long a SQLite writer waits for another one to finish before the database reports "locked".
SQLITE_BUSY_SECONDS = 30


def _writer_queue_connection() -> type[sqlite3.Connection]:
    """A ``sqlite3.Connection`` class whose write transactions queue on one lock per engine.

    SQLite lets one writer in at a time; a writer that finds the database locked
    sleeps in SQLite's busy handler (1, 2, 5, 10, ... up to 100 ms) and tries
    again, so under concurrent writes from one process's threads (a web
    server's pool) the lock sat free while the waiters slept: requests took
    tens of milliseconds for a 2 ms transaction. Writers of the same engine
    now wait on a Python lock, taken before ``BEGIN IMMEDIATE`` and given back
    once ``COMMIT`` or ``ROLLBACK`` has run (or the connection closes), so the
    next one starts at once. Other processes still meet SQLite's busy timeout.
    """

    import sqlite3

    lock = threading.Lock()

    class WriterQueueConnection(sqlite3.Connection):
        holds_write_lock = False

        def begin_write(self) -> None:
            """Wait for this engine's writers ahead (bounded; then SQLite's own timeout decides)."""
            if not self.holds_write_lock and lock.acquire(timeout=SQLITE_BUSY_SECONDS):
                self.holds_write_lock = True

        def end_write(self) -> None:
            """Let the next writer in."""
            if self.holds_write_lock:
                self.holds_write_lock = False
                lock.release()

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self.end_write()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self.end_write()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self.end_write()

    return WriterQueueConnection


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if not connection.get_execution_options().get("sqlite_immediate", True):
            connection.exec_driver_sql("BEGIN")
            return
        dbapi_connection = connection.connection.dbapi_connection
        begin_write = getattr(dbapi_connection, "begin_write", None)  # absent: a caller's own connection factory
        if begin_write is not None:
            begin_write()
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if begin_write is not None:
                dbapi_connection.end_write()
            raise


def unmanaged(prefix: str) -> None:
    """Keep schema objects whose names start with *prefix* out of schema comparisons.

    For pieces a plugin's migration creates with dialect-specific DDL that the
    models cannot describe (an FTS5 virtual table and its shadow tables, a
    ``tsvector`` table, a FULLTEXT index): ``schema_diff`` and autogenerate
    then ignore them instead of proposing to drop them.
    """
    Base.metadata.info.setdefault("unmanaged_prefixes", set()).add(prefix)


def is_unmanaged(name: str | None) -> bool:
    """True when *name* was declared with :func:`unmanaged`."""
    prefixes: set[str] = Base.metadata.info.get("unmanaged_prefixes", set())
    return name is not None and any(name.startswith(p) for p in prefixes)


def table_owner(table_name: str, plugin_names: Iterable[str]) -> str:
    """Return the plugin that owns *table_name* by its prefix, or ``"core"``."""
    for name in plugin_names:
        if table_name.startswith(f"{name}_"):
            return name
    return "core"


def money(value: Any, field: str = "amount") -> Decimal:
    """Convert *value* to a Decimal amount, refusing floats' binary noise and garbage."""
    from crmcore.errors import ValidationError

    if isinstance(value, float):
        value = repr(value)
    try:
        result = Decimal(str(value).strip())
    except Exception:
        raise ValidationError({field: f"{value!r} is not a number"}) from None
    if not result.is_finite():
        raise ValidationError({field: f"{value!r} is not a finite number"})
    return result


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a batch write, then resume it.

    A batch builds thousands of short-lived rows while the session holds its
    ORM objects; the collector's full passes over the whole heap (the CRM,
    SQLAlchemy's mappers, every plugin) then cost a quarter of the batch's
    CPU. Nothing is leaked: reference counting still frees what it can, and
    the collector picks up the rest once it runs again. A collector already
    disabled by the host stays disabled.
    """
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

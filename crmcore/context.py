"""The unit of work: one transaction, the acting user, the clock, hooks and the outbox."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from sqlalchemy import Insert, Select, Table, bindparam, insert, literal_column, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session, make_transient_to_detached

if TYPE_CHECKING:
    from crmcore.crm import CRM
    from crmcore.models import AuditEntry, User

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class Actor:
    """Who is acting: a user, or the system (``user_id`` None)."""

    user_id: int | None = None
    label: str = "system"
    role: str | None = None
    team_id: int | None = None

    @property
    def is_system(self) -> bool:
        """True for work done by the CRM itself (imports, workers, timers)."""
        return self.user_id is None


SYSTEM = Actor()


@attrs.define(eq=False, kw_only=True)
class HookContext:
    """Everything a service or hook needs for one unit of work.

    ``now`` is read once from the CRM's clock when the unit of work starts, so
    every row it writes carries the same time and a frozen clock controls it.
    """

    crm: CRM
    session: Session
    actor: Actor
    now: datetime
    #: Per-unit-of-work memo for lookups that many rows of a batch share (rep
    #: loads, custom field declarations, products, touchpoints of new contacts).
    cache: dict[str, Any] = attrs.field(factory=dict)
    #: False when working in a host application's session, which may outlive a rollback.
    own_session: bool = True
    _after_commit: list[Callable[[], None]] = attrs.field(factory=list)

    def call(self, hook_name: str, **kwargs: Any) -> Any:
        """Fire a lifecycle hook with this context as ``ctx``."""
        return self.crm.plugins.call(hook_name, ctx=self, **kwargs)

    def audit(self, action: str, entity: str, entity_id: int | None, changes: dict[str, Any] | None = None) -> None:
        """Record in the audit trail that the actor did *action* to *entity*.

        A write-only row: inserted at once with a Core ``INSERT`` (no ORM
        object to track), in this transaction.
        """
        self.insert_rows(self.audit_row(action, entity, entity_id, changes))

    def audit_row(
        self, action: str, entity: str, entity_id: int | None, changes: dict[str, Any] | None = None
    ) -> tuple[type[AuditEntry], dict[str, Any]]:
        """The row :meth:`audit` writes, to pass to :meth:`insert_rows` with others."""
        from crmcore.models import AuditEntry

        return AuditEntry, {
            "occurred_at": self.now,
            "actor_id": self.actor.user_id,
            "actor": self.actor.label,
            "action": action,
            "entity": entity,
            "entity_id": entity_id,
            "changes": _jsonable(changes or {}),
        }

    def insert(self, model: Any, **values: Any) -> None:
        """Insert one write-only row of *model* now, without an ORM object (audit, history rows).

        Cheaper than ``session.add`` for rows nothing reads back in the unit of
        work; pending ORM objects are not flushed first.
        """
        self.insert_rows((model, values))

    def insert_rows(self, *rows: tuple[Any, dict[str, Any]]) -> None:
        """Insert write-only rows, ``(model, values)`` each, now and in this order, as :meth:`insert` does.

        On PostgreSQL several rows go out as one statement (data-modifying
        ``WITH`` clauses): one round trip to the server instead of one per row,
        for the stage history and audit entry that a capture or a stage change
        writes together. Elsewhere each row is its own ``INSERT``.
        """
        connection = self.session.connection()
        if len(rows) == 1 or connection.dialect.name != "postgresql":
            for model, values in rows:
                connection.execute(_insert_of(model.__table__), values)
            return
        shape, params = [], {}
        for i, (model, given) in enumerate(rows):
            values = _with_defaults(model.__table__, given)
            shape.append((model.__table__, tuple(values)))
            params.update({f"r{i}_{name}": value for name, value in values.items()})
        connection.execute(_inserts_together(tuple(shape)), params)

    def persist(self, obj: Any, *rows: tuple[Any, dict[str, Any]]) -> None:
        """Write the new ORM object *obj* now and keep it in the session, as ``add`` and ``flush`` would.

        One Core ``INSERT`` instead of the ORM's unit-of-work flush, which
        costs several times the statement for a single row. Pending changes
        are flushed first (as autoflush would), column defaults (scalars, or
        callables without arguments) are applied in Python, and the object
        comes back persistent with its key, so later changes to it are
        flushed as usual. For a row of one table (a captured contact, a
        touchpoint) in the unit of work's own transaction; inside a savepoint
        or a host's session, or with related objects set, the ORM does it.

        *rows* are write-only rows ``(model, values)`` to insert right after
        it, as :meth:`insert_rows` does; a value :data:`NEW_KEY` stands for
        *obj*'s new key (a captured contact's first stage and audit entry, a
        touch's attribution). On PostgreSQL *obj* and *rows* go out as one
        statement (data-modifying ``WITH`` clauses).
        """
        session = self.session
        mapper = sa_inspect(obj).mapper
        if (
            session.in_nested_transaction()  # a savepoint rolled back must forget the object, as the ORM does
            or not self.own_session  # so must a host's session that goes on after a rollback
            or any(relation.key in obj.__dict__ for relation in mapper.relationships)  # related objects
        ):
            session.add(obj)
            session.flush()
            if rows:
                self.insert_rows(*_with_key(rows, sa_inspect(obj).identity[0]))
            return
        if session.autoflush:
            session.flush()
        # Defaults and the new key go straight into the instance's dict: make_transient_to_detached
        # then takes every value there as loaded from the database (no change history to flush).
        state = obj.__dict__
        values: dict[str, Any] = {}
        key_attribute = key_column = None
        for attribute, column_key, primary_key, default in _persist_plan(mapper):
            if attribute in state:
                values[column_key] = state[attribute]
            elif primary_key:
                key_attribute, key_column = attribute, column_key
            elif default is not _SERVER_DEFAULT:
                value = None if default is None else default.arg(None) if default.is_callable else default.arg
                state[attribute] = values[column_key] = value
        connection = session.connection()
        table = mapper.local_table
        if rows and key_column is not None and connection.dialect.name == "postgresql":
            shape, params = [], {f"o_{name}": value for name, value in values.items()}
            for i, (model, given) in enumerate(rows):
                row = _with_defaults(model.__table__, given)
                shape.append((model.__table__, tuple(row), frozenset(k for k, v in row.items() if v is NEW_KEY)))
                params.update({f"r{i}_{name}": value for name, value in row.items() if value is not NEW_KEY})
            statement = _persist_together(table, tuple(values), key_column, tuple(shape))
            state[key_attribute] = connection.execute(statement, params).scalar_one()
            rows = ()
        else:
            result = connection.execute(_insert_of(table), values)
            if key_attribute is not None and result.inserted_primary_key is not None:
                state[key_attribute] = result.inserted_primary_key[0]
        make_transient_to_detached(obj)
        session.add(obj)
        if rows:
            key = state[key_attribute] if key_attribute is not None else sa_inspect(obj).identity[0]
            self.insert_rows(*_with_key(rows, key))

    def metadata(self, key: str, load: Callable[[], T]) -> T:
        """A metadata value (custom field declarations, active reps), cached as :mod:`crmcore.metadata` says.

        Read once per unit of work; after :meth:`metadata_changed` straight from this transaction.
        """
        memo: dict[str, Any] = self.cache.setdefault("metadata", {})
        if key not in memo:
            memo[key] = load() if self.cache.get("metadata_changed") else self.crm.metadata.get(key, load)
        value: T = memo[key]
        return value

    def metadata_changed(self) -> None:
        """Note that this unit of work changed metadata: every cache drops it when the transaction commits."""
        self.cache.pop("metadata", None)
        self.cache["metadata_changed"] = True
        self.on_commit(self.crm.metadata.invalidate)

    def enqueue(
        self,
        handler: str,
        payload: dict[str, Any] | None = None,
        *,
        key: str,
        due_at: datetime | None = None,
        delay: timedelta | None = None,
        max_attempts: int | None = None,
    ) -> None:
        """Queue a side effect or timer in the outbox, in this transaction.

        The same *key* twice is one job: a second enqueue is ignored (so a
        repeated import or a retried request never doubles a side effect). The
        job is delivered after commit, at least once, by a worker.
        """
        from crmcore.jobs.outbox import insert_job

        when = due_at or (self.now + delay if delay else self.now)
        insert_job(
            self.session,
            handler=handler,
            payload=payload or {},
            key=key,
            due_at=when,
            now=self.now,
            max_attempts=max_attempts or self.crm.jobs.max_attempts(handler),
        )
        self.on_commit(self.crm.jobs.notify)

    def cancel_jobs(self, key: str, *, prefix: bool = False) -> int:
        """Cancel pending jobs by key (or key prefix); returns how many were cancelled."""
        from crmcore.models import Job, JobState

        condition = Job.idempotency_key.startswith(key) if prefix else Job.idempotency_key == key
        result = self.session.execute(
            update(Job)
            .where(condition, Job.state == JobState.PENDING)
            .values(state=JobState.CANCELLED, finished_at=self.now)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def reschedule_job(self, key: str, due_at: datetime) -> bool:
        """Move a pending job to *due_at*; False when no pending job has that key."""
        from crmcore.models import Job, JobState

        result = self.session.execute(
            update(Job)
            .where(Job.idempotency_key == key, Job.state == JobState.PENDING)
            .values(due_at=due_at, available_at=due_at)
        )
        return bool(getattr(result, "rowcount", 0))

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run *callback* after the transaction commits (never if it rolls back)."""
        if callback not in self._after_commit:
            self._after_commit.append(callback)

    def acting_user(self) -> User | None:
        """The acting user's row, or None for the system."""
        from crmcore.models import User

        if self.actor.user_id is None:
            return None
        return self.session.get(User, self.actor.user_id)

    def scalar(self, statement: Any) -> Any:
        """Shortcut for ``session.scalar``."""
        return self.session.scalar(statement)

    def first(self, model: Any, *conditions: Any) -> Any:
        """Return the first row of *model* matching *conditions*, or None."""
        return self.session.scalars(select(model).where(*conditions).limit(1)).first()


_SERVER_DEFAULT = object()


class _NewKey:
    """The type of :data:`NEW_KEY`."""

    def __repr__(self) -> str:
        return "NEW_KEY"


#: In a row given to :meth:`HookContext.persist`: the persisted object's new key.
NEW_KEY: Any = _NewKey()


def _with_key(rows: tuple[tuple[Any, dict[str, Any]], ...], key: Any) -> list[tuple[Any, dict[str, Any]]]:
    """*rows* with :data:`NEW_KEY` replaced by *key*."""
    return [(model, {k: key if v is NEW_KEY else v for k, v in values.items()}) for model, values in rows]


def _with_defaults(table: Table, given: dict[str, Any]) -> dict[str, Any]:
    """*given* and the Python-side defaults of the columns it leaves out, as a plain ``INSERT`` applies them."""
    values = dict(given)
    for name, default in _python_defaults(table, tuple(given)):
        values[name] = default.arg(None) if default.is_callable else default.arg
    return values


@functools.cache
def _persist_plan(mapper: Any) -> tuple[tuple[str, str, bool, Any], ...]:
    """Per column of *mapper*: attribute, column key, primary key?, default (``_SERVER_DEFAULT``: the database's)."""
    plan = []
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        default = _SERVER_DEFAULT if column.server_default is not None else column.default
        plan.append((prop.key, column.key, bool(column.primary_key), default))
    return tuple(plan)


@functools.cache
def _insert_of(table: Table) -> Insert:
    """The (immutable) ``INSERT`` statement of *table*, built once."""
    return insert(table)


@functools.cache
def _python_defaults(table: Table, given: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    """The Python-side column defaults of *table* that a row naming *given* columns needs."""
    return tuple(
        (column.key, column.default)
        for column in table.columns
        if column.key not in given and column.default is not None and not column.primary_key
    )


@functools.cache
def _inserts_together(shape: tuple[tuple[Table, tuple[str, ...]], ...]) -> Select[Any]:
    """One statement inserting a row into each table of *shape* (PostgreSQL), built once per shape.

    The values of row *i* are bound as ``r<i>_<column>``.
    """
    parts = [
        insert(table)
        .values({name: bindparam(f"r{i}_{name}", type_=table.c[name].type) for name in names})
        .cte(f"row{i}")
        for i, (table, names) in enumerate(shape)
    ]
    return select(literal_column("1")).add_cte(*parts)


@functools.cache
def _persist_together(
    table: Table,
    names: tuple[str, ...],
    key: str,
    shape: tuple[tuple[Table, tuple[str, ...], frozenset[str]], ...],
) -> Select[Any]:
    """One statement inserting a row of *table* and the rows of *shape* that name its new key (PostgreSQL).

    The row's values are bound as ``o_<column>``, row *i*'s as ``r<i>_<column>``; the
    columns of a row in its frozenset take the new key. Returns the new key. Built once per shape.
    """
    head = (
        insert(table)
        .values({name: bindparam(f"o_{name}", type_=table.c[name].type) for name in names})
        .returning(table.c[key])
        .cte("obj")
    )
    parts = []
    for i, (target, columns, keyed) in enumerate(shape):
        row = [head.c[key] if name in keyed else bindparam(f"r{i}_{name}", type_=target.c[name].type)
               for name in columns]  # fmt: skip
        parts.append(insert(target).from_select(list(columns), select(*row)).cte(f"row{i}"))
    return select(head.c[key]).add_cte(*parts)


def _jsonable(value: Any) -> Any:
    """Turn Decimals, dates and sets into JSON-able values for the audit trail."""
    if value is None or isinstance(value, str | int | float):  # the common case first
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value

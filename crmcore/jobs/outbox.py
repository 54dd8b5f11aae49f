"""The outbox table's SQL: insert once per key, claim with leases, finish or retry.

Claiming is the one place where workers meet. On PostgreSQL and MariaDB the
due rows are selected ``FOR UPDATE SKIP LOCKED`` so concurrent workers take
disjoint batches without waiting; on SQLite the claim runs under ``BEGIN
IMMEDIATE`` (see :func:`crmcore.db.create_engine`), which serializes claims.
A claimed row's ``available_at`` becomes its lease expiry: if its worker dies,
the same indexed query finds it again once the lease runs out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import attrs
from sqlalchemy import Table, Update, select, update
from sqlalchemy.orm import Session

from crmcore.models import Job, JobState
from crmcore.registry import JobCall, JobHandler

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM

log = logging.getLogger("crmcore.jobs")

#: Longest wait between retries.
MAX_BACKOFF = timedelta(hours=1)
#: A batch's transaction commits once it has run this long, so its locks (on SQLite, the
#: database's write lock) are held briefly.
BATCH_SECONDS = 0.2


def insert_job(
    session: Session,
    *,
    handler: str,
    payload: dict[str, Any],
    key: str,
    due_at: datetime,
    now: datetime,
    max_attempts: int,
) -> None:
    """Insert an outbox row unless one with *key* exists (then nothing happens)."""
    insert_jobs(session, [{"handler": handler, "payload": payload, "idempotency_key": key, "due_at": due_at,
                           "max_attempts": max_attempts}], now=now)  # fmt: skip


def insert_jobs(session: Session, jobs: Sequence[dict[str, Any]], *, now: datetime) -> None:
    """Insert many outbox rows in one executemany; a key that exists already is skipped.

    Each job is a mapping of ``handler``, ``payload``, ``idempotency_key``,
    ``due_at`` and ``max_attempts``.
    """
    if not jobs:
        return
    for job in jobs:
        if not job["idempotency_key"] or len(job["idempotency_key"]) > 255:
            from crmcore.errors import ValidationError

            raise ValidationError({"key": "an idempotency key is 1 to 255 characters"})
    rows = [{**job, "state": JobState.PENDING, "available_at": job["due_at"], "attempts": 0, "created_at": now}
            for job in jobs]  # fmt: skip
    session.execute(_insert_once(session.get_bind().dialect.name), rows)


def _insert_once(dialect: str) -> Any:
    """An INSERT of job rows that does nothing for a key already queued, in *dialect*'s words."""
    table = cast(Table, Job.__table__)
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=["idempotency_key"])
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing(index_elements=["idempotency_key"])
    from sqlalchemy.dialects.mysql import insert as mysql_insert

    stmt = mysql_insert(table)
    return stmt.on_duplicate_key_update(idempotency_key=stmt.inserted.idempotency_key)


@attrs.frozen(kw_only=True)
class Claimed:
    """A claimed job, detached from any session."""

    id: int
    handler: str
    payload: dict[str, Any]
    key: str
    attempts: int
    max_attempts: int
    due_at: datetime


def _locking(dialect: str) -> bool:
    return dialect in {"postgresql", "mysql", "mariadb"}


def claim(
    crm: CRM,
    worker: str,
    limit: int,
    lease: timedelta,
    *,
    to_state: str = JobState.RUNNING,
    count_attempt: bool = True,
    ids: Sequence[int] | None = None,
) -> list[Claimed]:
    """Take up to *limit* due rows (pending, or running with an expired lease).

    With *ids* (the Celery path), take those of them still queued or pending:
    a duplicated message, or one whose jobs another worker holds, takes nothing.
    Those rows are locked in id order, waiting rather than skipping: a row
    skipped because a concurrent scan held it would stay queued until its lease
    ran out.

    On SQLite and PostgreSQL one ``UPDATE … WHERE id IN (…) RETURNING`` marks
    and reads the rows; MariaDB, which has no ``UPDATE … RETURNING``, selects,
    updates and reads back. Either way the cost follows the number due (an
    indexed range scan on ``state``, ``available_at``).
    """
    with crm.session_factory() as session, session.begin():
        now = crm.clock.now()
        dialect = session.get_bind().dialect.name
        if ids is None:
            due = [Job.state.in_([JobState.PENDING, JobState.RUNNING, JobState.QUEUED]), Job.available_at <= now]
            query = select(Job.id).where(*due).order_by(Job.available_at).limit(limit)
        else:
            query = select(Job.id).where(Job.id.in_(ids), Job.state.in_([JobState.QUEUED, JobState.PENDING]))
            query = query.order_by(Job.id).limit(limit)
        if _locking(dialect):
            query = query.with_for_update(skip_locked=ids is None)
        table = cast(Table, Job.__table__)
        values: dict[str, Any] = {"state": to_state, "locked_by": worker, "available_at": now + lease}
        if count_attempt:
            values["attempts"] = table.c.attempts + 1
        if dialect in ("sqlite", "postgresql"):
            claimed = session.execute(
                update(table).where(table.c.id.in_(query.scalar_subquery())).values(**values)
                .returning(*(table.c[name] for name in _CLAIMED_COLUMNS))
            ).all()  # fmt: skip
            return sorted((_claimed(row) for row in claimed), key=lambda job: job.id)
        taken = list(session.scalars(query))
        if not taken:
            return []
        session.execute(update(table).where(table.c.id.in_(taken)).values(**values))
        rows = session.execute(
            select(*(table.c[name] for name in _CLAIMED_COLUMNS)).where(table.c.id.in_(taken)).order_by(table.c.id)
        ).all()
        return [_claimed(row) for row in rows]


_CLAIMED_COLUMNS = ("id", "handler", "payload", "idempotency_key", "attempts", "max_attempts", "due_at")


def _claimed(row: Any) -> Claimed:
    return Claimed(id=row.id, handler=row.handler, payload=dict(row.payload or {}), key=row.idempotency_key,
                   attempts=row.attempts, max_attempts=row.max_attempts, due_at=row.due_at)  # fmt: skip


def execute(crm: CRM, jobs: Sequence[Claimed], worker: str, stop: Callable[[], bool] = lambda: False) -> int:
    """Run claimed *jobs*; return how many ran.

    A handler's database writes commit together with its job's ``done`` mark:
    in a transaction per job, or, for handlers declared ``batch=True``, in one
    transaction for a run of consecutive jobs with a savepoint each (a failing
    job rolls back to its savepoint and gets its retry mark; the others
    commit). For database-only handlers delivery is thus effectively once;
    external side effects are at least once (a crash before the commit repeats
    them). When *stop* turns true, the jobs not yet started are released untouched.
    """
    ran = 0
    while ran < len(jobs):
        if stop():
            release_running(crm, [j.id for j in jobs[ran:]], worker)
            break
        handler = crm.jobs.handlers.get(jobs[ran].handler)
        if handler is not None and handler.batch:
            ran += _run_batch(crm, jobs[ran:], worker, stop)
        else:
            _run_one(crm, jobs[ran], worker)
            ran += 1
    return ran


def _run_one(crm: CRM, job: Claimed, worker: str) -> None:
    """Run *job* in its own transaction, together with its done mark."""
    started = time.perf_counter()
    try:
        handler = crm.jobs.handler(job.handler)
        with crm.transaction() as ctx:
            _call(crm, handler, job)
            ctx.session.execute(_mark_done([job.id], worker, ctx.now))
    except Exception as exc:  # a handler may raise anything; the job is retried
        with crm.transaction() as ctx:
            _fail(ctx, job, worker, exc, time.perf_counter() - started)
    else:
        _log_done(job, time.perf_counter() - started)


def _run_batch(crm: CRM, jobs: Sequence[Claimed], worker: str, stop: Callable[[], bool]) -> int:
    """Run the leading jobs of *jobs* whose handlers batch in one transaction; return how many ran.

    Each job runs in a savepoint; the done marks are one UPDATE. The batch ends
    early after :data:`BATCH_SECONDS` (so its locks are short) or on *stop*. If
    the transaction fails as a whole, nothing of it committed: its jobs run
    again one by one.
    """
    deadline = time.perf_counter() + BATCH_SECONDS
    taken: list[Claimed] = []
    done: list[tuple[Claimed, float]] = []
    try:
        with crm.session_factory() as session, session.begin():
            for job in jobs:
                handler = crm.jobs.handlers.get(job.handler)
                if handler is None or not handler.batch or (taken and (time.perf_counter() > deadline or stop())):
                    break
                taken.append(job)
                started = time.perf_counter()
                try:
                    with session.begin_nested(), crm.transaction(session=session):
                        _call(crm, handler, job)
                except Exception as exc:  # rolled back to the savepoint; the job is retried
                    with crm.transaction(session=session) as ctx:
                        _fail(ctx, job, worker, exc, time.perf_counter() - started)
                else:
                    done.append((job, time.perf_counter() - started))
            if done:
                session.execute(_mark_done([job.id for job, _ in done], worker, crm.clock.now()))
    except Exception as exc:  # the transaction itself failed (deadlock, lost connection)
        log.warning("a batch of %d jobs rolled back (%s); running them one by one",
                    len(taken), str(exc).splitlines()[0] if str(exc) else type(exc).__name__)  # fmt: skip
        for job in taken:
            _run_one(crm, job, worker)
        return len(taken)
    for job, seconds in done:
        _log_done(job, seconds)
    return len(taken)


def _call(crm: CRM, handler: JobHandler, job: Claimed) -> None:
    handler.func(JobCall(crm=crm, job_id=job.id, handler=job.handler, payload=job.payload, idempotency_key=job.key,
                         attempt=job.attempts, due_at=job.due_at))  # fmt: skip


def _mark_done(ids: Sequence[int], worker: str, now: datetime) -> Update:
    return (
        update(Job)
        .where(Job.id.in_(ids), Job.locked_by == worker, Job.state == JobState.RUNNING)
        .values(state=JobState.DONE, finished_at=now, locked_by=None)
    )


def _log_done(job: Claimed, seconds: float) -> None:
    log.info(
        "job done handler=%s key=%s attempt=%d duration_ms=%.2f", job.handler, job.key, job.attempts, seconds * 1000,
        extra={"handler": job.handler, "key": job.key, "attempt": job.attempts},
    )  # fmt: skip


def _fail(ctx: HookContext, job: Claimed, worker: str, exc: Exception, seconds: float) -> None:
    error = f"{type(exc).__name__}: {exc}"[:4000]
    row = ctx.session.get(Job, job.id)
    if row is None or row.locked_by != worker:
        return
    row.last_error = error
    row.locked_by = None
    if job.attempts >= job.max_attempts:
        row.state = JobState.DEAD
        row.finished_at = ctx.now
        log.error("job dead handler=%s key=%s attempt=%d error=%s", job.handler, job.key, job.attempts, error)
        ctx.session.flush()
        try:
            with ctx.session.begin_nested():
                ctx.call("crm_job_dead", job=row)
        except Exception:  # an alerting plugin must not block the batch
            log.exception("crm_job_dead hook failed for job %s", job.id)
        return
    backoff = ctx.crm.jobs.backoff(job.handler) * (2 ** (job.attempts - 1))
    row.state = JobState.PENDING
    row.available_at = ctx.now + min(backoff, MAX_BACKOFF)
    log.warning(
        "job failed handler=%s key=%s attempt=%d duration_ms=%.2f retry_at=%s error=%s",
        job.handler, job.key, job.attempts, seconds * 1000, row.available_at.isoformat(), error,
    )  # fmt: skip


def release(crm: CRM, ids: Sequence[int], worker: str) -> None:
    """Give queued jobs back (the broker refused them): pending again, due now."""
    with crm.session_factory() as session, session.begin():
        session.execute(
            update(Job)
            .where(Job.id.in_(ids), Job.locked_by == worker, Job.state == JobState.QUEUED)
            .values(state=JobState.PENDING, locked_by=None, available_at=crm.clock.now())
        )


def release_running(crm: CRM, ids: Sequence[int], worker: str) -> None:
    """Give claimed jobs back (shutting down): pending again, the attempt not counted."""
    with crm.transaction() as ctx:
        ctx.session.execute(
            update(Job)
            .where(Job.id.in_(ids), Job.locked_by == worker, Job.state == JobState.RUNNING)
            .values(state=JobState.PENDING, locked_by=None, available_at=ctx.now, attempts=Job.attempts - 1)
        )

"""Durable jobs: the outbox, timers, handlers, workers (in-process or Celery).

Services queue work with ``ctx.enqueue(handler, payload, key=...)`` inside
their transaction; nothing leaves the process before commit. Workers claim due
rows, call the registered handler, and mark them done, retried or dead.
"""

from __future__ import annotations

import builtins
import threading
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from crmcore.errors import ConfigError, NotFound, ValidationError
from crmcore.models import Job, JobState, JobWorker
from crmcore.registry import JobHandler, PeriodicJob

if TYPE_CHECKING:
    from crmcore.crm import CRM
    from crmcore.jobs.worker import Worker

__all__ = ["Jobs"]


class Jobs:
    """The job system of one CRM: ``crm.jobs``."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm
        self._wakeup = threading.Condition()
        self._generation = 0
        self._periodic_slots: dict[str, datetime] = {}

    # -- registry --------------------------------------------------------------

    @cached_property
    def _registered(self) -> tuple[dict[str, JobHandler], dict[str, PeriodicJob]]:
        handlers: dict[str, JobHandler] = {}
        periodic: dict[str, PeriodicJob] = {}
        for plugin, items in self.crm.plugins.collect_by_plugin("crm_register_jobs"):
            for item in items:
                target: dict[str, Any] = handlers if isinstance(item, JobHandler) else periodic
                if item.name in target:
                    raise ConfigError(f"plugin {plugin!r} registers job {item.name!r} a second time")
                target[item.name] = item
        for job in periodic.values():
            if job.handler not in handlers:
                raise ConfigError(f"periodic job {job.name!r} names unknown handler {job.handler!r}")
        return handlers, periodic

    @property
    def handlers(self) -> dict[str, JobHandler]:
        """Registered handlers by name."""
        return self._registered[0]

    @property
    def periodic(self) -> dict[str, PeriodicJob]:
        """Registered periodic jobs by name."""
        return self._registered[1]

    def handler(self, name: str) -> JobHandler:
        """The handler called *name*, or a ConfigError (a plugin not enabled here)."""
        try:
            return self.handlers[name]
        except KeyError:
            raise ConfigError(f"no job handler {name!r} is registered (is its plugin enabled?)") from None

    def max_attempts(self, name: str) -> int:
        """Attempts allowed for jobs of handler *name* (8 when unknown here)."""
        handler = self.handlers.get(name)
        return handler.max_attempts if handler else 8

    def backoff(self, name: str) -> timedelta:
        """First retry delay of handler *name*."""
        handler = self.handlers.get(name)
        return handler.backoff if handler else timedelta(seconds=10)

    # -- queueing outside a service ---------------------------------------------

    def enqueue(
        self, handler: str, payload: dict[str, Any] | None = None, *, key: str,
        due_at: datetime | None = None, delay: timedelta | None = None,
    ) -> None:  # fmt: skip
        """Queue a job in its own transaction (inside a service, use ``ctx.enqueue``)."""
        with self.crm.transaction() as ctx:
            ctx.enqueue(handler, payload, key=key, due_at=due_at, delay=delay)

    def schedule_periodic(self) -> None:
        """Make sure each periodic job has a row for the current period (once per period)."""
        if not self.periodic:
            return
        now = self.crm.clock.now()
        due = {}
        for job in self.periodic.values():
            seconds = max(int(job.every.total_seconds()), 1)
            slot = datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, tz=now.tzinfo)
            if self._periodic_slots.get(job.name) != slot:
                due[job.name] = (job, slot)
        if not due:
            return
        with self.crm.transaction() as ctx:
            for name, (job, slot) in due.items():
                ctx.enqueue(job.handler, dict(job.payload), key=f"periodic:{name}:{slot.isoformat()}", due_at=slot)
        for name, (_job, slot) in due.items():
            self._periodic_slots[name] = slot

    # -- waking workers ----------------------------------------------------------

    def notify(self) -> None:
        """Wake in-process workers now (called after a commit that queued jobs)."""
        with self._wakeup:
            self._generation += 1
            self._wakeup.notify_all()

    def wait_for_work(self, timeout: float, stopping: threading.Event | None = None) -> None:
        """Sleep until notified or *timeout* passes."""
        with self._wakeup:
            generation = self._generation
            if stopping is not None and stopping.is_set():
                return
            self._wakeup.wait_for(lambda: self._generation != generation, timeout=timeout)

    # -- running -------------------------------------------------------------------

    @cached_property
    def celery(self) -> Any:
        """The Celery app for this CRM's broker (only with the Celery backend)."""
        from crmcore.jobs.celery_app import make_celery

        return make_celery(self.crm.settings)

    def worker(self, **options: Any) -> Worker:
        """A :class:`~crmcore.jobs.worker.Worker` for this CRM."""
        from crmcore.jobs.worker import Worker

        return Worker(self.crm, **options)

    def run_due(self, *, limit: int | None = None) -> int:
        """Run every job due now in this process and return how many ran (tests, cron)."""
        return self.worker(backend="inline", name="run-due").run(once=True, max_jobs=limit)

    # -- inspecting and repairing ----------------------------------------------------

    def list(self, *, state: str | None = None, handler: str | None = None, limit: int = 100) -> builtins.list[Job]:
        """Jobs, most recently due first, filtered by state and handler."""
        if state is not None and state not in {s.value for s in JobState}:
            raise ValidationError({"state": f"unknown state {state!r}; states: {', '.join(s.value for s in JobState)}"})
        query = select(Job).order_by(Job.due_at.desc(), Job.id.desc()).limit(limit)
        if state:
            query = query.where(Job.state == state)
        if handler:
            query = query.where(Job.handler == handler)
        with self.crm.transaction(readonly=True) as ctx:
            return list(ctx.session.scalars(query))

    def retry(self, ids: builtins.list[int] | None = None, *, all_dead: bool = False) -> int:
        """Put dead jobs back in line with fresh attempts; returns how many."""
        if not ids and not all_dead:
            raise ValidationError({"ids": "give job ids or --all-dead"})
        with self.crm.transaction() as ctx:
            condition = [Job.state == JobState.DEAD]
            if ids:
                found = set(ctx.session.scalars(select(Job.id).where(Job.id.in_(ids), *condition)))
                missing: builtins.list[int] = sorted(set(ids) - found)
                if missing:
                    raise NotFound(f"no dead job with id {', '.join(map(str, missing))}")
                condition.append(Job.id.in_(ids))
            result = ctx.session.execute(
                update(Job)
                .where(*condition)
                .values(state=JobState.PENDING, attempts=0, available_at=ctx.now, finished_at=None)
            )
            ctx.audit("jobs.retry", "job", None, {"ids": ids or "all dead"})
            ctx.on_commit(self.notify)
            return int(getattr(result, "rowcount", 0) or 0)

    def stats(self) -> builtins.list[dict[str, Any]]:
        """Per handler: due, running, queued, done, dead, cancelled, and oldest due age (s)."""
        with self.crm.transaction(readonly=True) as ctx:
            now = ctx.now
            rows = ctx.session.execute(
                select(Job.handler, Job.state, func.count()).group_by(Job.handler, Job.state)
            ).all()
            due_rows = ctx.session.execute(
                select(Job.handler, func.count(), func.min(Job.due_at))
                .where(Job.state == JobState.PENDING, Job.available_at <= now)
                .group_by(Job.handler)
            ).all()
        table: dict[str, dict[str, Any]] = {}
        for handler, state, count in rows:
            entry = table.setdefault(handler, _empty_stats(handler))
            entry[state] = count
        for handler, count, oldest in due_rows:
            entry = table.setdefault(handler, _empty_stats(handler))
            entry["due"] = count
            entry["oldest_due_age_s"] = round((now - oldest).total_seconds(), 1) if oldest else None
        return [table[name] for name in sorted(table)]

    def workers(self) -> builtins.list[JobWorker]:
        """Workers that reported in, most recent first."""
        with self.crm.transaction(readonly=True) as ctx:
            return list(ctx.session.scalars(select(JobWorker).order_by(JobWorker.seen_at.desc())))


def _empty_stats(handler: str) -> dict[str, Any]:
    return {"handler": handler, "due": 0, "pending": 0, "running": 0, "queued": 0,
            "done": 0, "dead": 0, "cancelled": 0, "oldest_due_age_s": None}  # fmt: skip

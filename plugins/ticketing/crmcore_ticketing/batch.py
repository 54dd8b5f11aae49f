"""Write-only rows of a batch (history lines, SLA timers), kept in memory and written with executemany.

Mail ingestion (:meth:`~crmcore_ticketing.mailin.MailIn.ingest_many`) handles
hundreds of messages in one transaction. The history lines and timer jobs it
writes are never read back while the batch runs, so instead of one ORM insert
(and a flush for the metric's id) each, they are collected here and written
with one executemany per table just before the commit. Each message runs in
a savepoint: :meth:`Deferred.mark` and :meth:`Deferred.rollback` drop what a
rolled-back message had collected, so nothing of it is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, insert

from crmcore_ticketing.models import HistoryEntry, SlaMetric

if TYPE_CHECKING:
    from crmcore.context import HookContext

_KEY = "ticketing:deferred"

#: Where a batch stood before a message: history lines collected, runs with an unwritten timer.
Mark = tuple[int, dict[int, SlaMetric]]


class Deferred:
    """The history lines and unwritten timers of one batch."""

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []
        #: Runs whose current timer (``timer_seq``, ``timer_at``) is not in the outbox yet, by identity.
        self.timers: dict[int, SlaMetric] = {}

    @staticmethod
    def of(ctx: HookContext) -> Deferred | None:
        """The batch collecting in *ctx*, or None outside a batch (rows are then written at once)."""
        found: Deferred | None = ctx.cache.get(_KEY)
        return found

    @staticmethod
    @contextmanager
    def collecting(ctx: HookContext) -> Iterator[Deferred]:
        """Collect in the block; write everything when it ends without an error."""
        deferred = ctx.cache[_KEY] = Deferred()
        try:
            yield deferred
            deferred.write(ctx)
        finally:
            ctx.cache.pop(_KEY, None)

    def holds(self, run: SlaMetric) -> bool:
        """True when *run*'s current timer is still in memory."""
        return id(run) in self.timers

    def add_timer(self, run: SlaMetric) -> None:
        """Write *run*'s timer (its ``timer_seq`` and ``timer_at`` at the end of the batch) later."""
        self.timers[id(run)] = run

    def drop_timer(self, run: SlaMetric) -> None:
        """Forget *run*'s unwritten timer (its deadline went away)."""
        self.timers.pop(id(run), None)

    def mark(self) -> Mark:
        """Where the batch stands, before a message's savepoint."""
        return len(self.history), dict(self.timers)

    def rollback(self, mark: Mark) -> None:
        """Drop what was collected since *mark* (the message's savepoint rolled back)."""
        del self.history[mark[0] :]
        self.timers = mark[1]

    def write(self, ctx: HookContext) -> None:
        """Insert the history lines and the timer jobs, one executemany each."""
        from crmcore.jobs.outbox import insert_jobs
        from crmcore_ticketing.engine import SLA_HANDLER

        ctx.session.flush()  # the runs get their ids, which the timer keys carry
        if self.history:
            ctx.session.execute(insert(cast(Table, HistoryEntry.__table__)), self.history)
        attempts = ctx.crm.jobs.max_attempts(SLA_HANDLER)
        jobs = [
            {"handler": SLA_HANDLER, "payload": {"metric_id": run.id, "seq": run.timer_seq},
             "idempotency_key": f"{SLA_HANDLER}:{run.id}:{run.timer_seq}", "due_at": run.timer_at,
             "max_attempts": attempts}
            for run in self.timers.values() if run.timer_at is not None
        ]  # fmt: skip
        if jobs:
            insert_jobs(ctx.session, jobs, now=ctx.now)
            ctx.on_commit(ctx.crm.jobs.notify)
        self.history, self.timers = [], {}

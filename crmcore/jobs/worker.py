"""The worker loop: claim due jobs in batches, run them, sleep, repeat; stop on SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy import exc as sa_exc

from crmcore.errors import DatabaseUnavailable
from crmcore.jobs import outbox
from crmcore.models import JobState, JobWorker

if TYPE_CHECKING:
    from crmcore.crm import CRM

log = logging.getLogger("crmcore.jobs")

#: What "the database is away" looks like; the worker waits and retries on these.
DB_ERRORS = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DBAPIError, DatabaseUnavailable)


class Worker:
    """Runs due jobs of one CRM until stopped.

    Any number of workers may run against PostgreSQL or MariaDB. On SQLite
    claims are serialized by the database, so one worker is all that helps;
    a second one is safe but logs a warning.
    """

    def __init__(
        self,
        crm: CRM,
        *,
        name: str | None = None,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        lease: timedelta = timedelta(minutes=5),
        backend: str | None = None,
    ) -> None:
        self.crm = crm
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.lease = lease
        self.backend = backend or crm.settings.jobs_backend
        self._stopping = threading.Event()
        self._celery = None
        self._orphans: list[int] = []  # claimed when the database went away; released once it is back

    def stop(self, *_args: object) -> None:
        """Ask the loop to end after the job in hand."""
        if not self._stopping.is_set():
            log.info("worker %s stopping after the job in hand", self.name)
        self._stopping.set()
        self.crm.jobs.notify()

    @property
    def stopping(self) -> bool:
        """True once a stop was asked for."""
        return self._stopping.is_set()

    def run(self, *, once: bool = False, max_jobs: int | None = None) -> int:
        """Loop until stopped (or, with *once*, until nothing is due); return jobs run."""
        self._install_signals()
        self._heartbeat(first=True)
        total, last_beat, failures = 0, time.monotonic(), 0
        try:
            while not self.stopping:
                try:
                    if self._orphans:
                        outbox.release_running(self.crm, self._orphans, self.name)
                        self._orphans = []
                    self.crm.jobs.schedule_periodic()
                    count = self.run_batch()
                    failures = 0
                except DB_ERRORS as exc:
                    failures += 1
                    wait = min(self.poll_interval * 2**failures, 30.0)
                    log.error("worker %s: database unavailable (%s); retrying in %.1fs",
                              self.name, str(exc).splitlines()[0], wait)  # fmt: skip
                    self._stopping.wait(wait)
                    continue
                total += count
                if max_jobs is not None and total >= max_jobs:
                    break
                if time.monotonic() - last_beat > 10:
                    self._heartbeat()
                    last_beat = time.monotonic()
                if count == 0:
                    if once:
                        break
                    self.crm.jobs.wait_for_work(self.poll_interval, self._stopping)
        finally:
            self._goodbye()
        return total

    def run_batch(self) -> int:
        """Claim and run (or, with the Celery backend, publish) one batch of due jobs."""
        if self.backend == "celery":
            return self._dispatch()
        claimed = outbox.claim(self.crm, self.name, self.batch_size, self.lease)
        if not claimed:
            return 0
        # Long jobs (a rate-limited campaign delivery) must not outlast the claim's lease:
        # once half of it has passed, the jobs not yet started are handed back.
        handback = time.monotonic() + self.lease.total_seconds() / 2

        def stop() -> bool:
            return self.stopping or time.monotonic() > handback

        try:
            return outbox.execute(self.crm, claimed, self.name, stop=stop)
        except DB_ERRORS:
            # Lost the database mid-batch: hand the unfinished claims back as soon as it returns,
            # instead of leaving them to the lease's expiry.
            self._orphans = [job.id for job in claimed]
            raise

    def _dispatch(self) -> int:
        """Publish due jobs to Celery; if the broker is down, give them back and wait."""
        from crmcore.jobs.celery_app import publish

        claimed = outbox.claim(self.crm, self.name, self.batch_size, self.lease,
                               to_state=JobState.QUEUED, count_attempt=False)  # fmt: skip
        if not claimed:
            return 0
        try:
            publish(self.crm, [job.id for job in claimed])
        except Exception as exc:  # kombu raises many kinds; none may lose a job
            outbox.release(self.crm, [job.id for job in claimed], self.name)
            log.error("dispatcher %s: broker unavailable (%s); retrying", self.name, exc)
            self._stopping.wait(min(self.poll_interval * 5, 30.0))
            return 0
        return len(claimed)

    def _install_signals(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop()

    def _heartbeat(self, first: bool = False) -> None:
        try:
            with self.crm.session_factory() as session, session.begin():
                now = self.crm.clock.now()
                row = session.get(JobWorker, self.name)
                if row is None:
                    session.add(JobWorker(name=self.name, hostname=socket.gethostname(), pid=os.getpid(),
                                          backend=self.backend, started_at=now, seen_at=now))  # fmt: skip
                else:
                    row.seen_at = now
                if first and session.get_bind().dialect.name == "sqlite":
                    recent = now - timedelta(seconds=max(30, self.poll_interval * 3))
                    others = session.scalars(
                        select(JobWorker.name).where(JobWorker.name != self.name, JobWorker.seen_at >= recent)
                    ).all()
                    if others:
                        log.warning(
                            "another worker (%s) runs on this SQLite database: SQLite serializes writes, so "
                            "jobs stay correct but more workers add no speed; use PostgreSQL or MariaDB "
                            "to scale out", ", ".join(others),
                        )  # fmt: skip
        except sa_exc.SQLAlchemyError as exc:
            log.error("worker %s: heartbeat failed: %s", self.name, exc)

    def _goodbye(self) -> None:
        try:
            with self.crm.session_factory() as session, session.begin():
                session.execute(delete(JobWorker).where(JobWorker.name == self.name))
        except sa_exc.SQLAlchemyError:
            pass

"""A plugin for job tests, usable in-process and from worker subprocesses.

Handler ``test.effect`` writes one row per idempotency key into ``test_effect``
(inside the job's transaction, so it commits with the job's done mark) and
appends every delivery attempt, with its start and end time, to a JSON-lines
file (so attempts whose transaction rolled back are still seen).
``test.batch_effect`` does the same with ``batch=True``; a payload with
``"fail_first": true`` makes its first attempt raise after writing.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from crmcore import hookimpl
from crmcore.registry import JobCall, JobHandler

EFFECT_TABLE = "CREATE TABLE test_effect (job_key VARCHAR(255) PRIMARY KEY, worker VARCHAR(120))"


def create_tables(crm) -> None:
    with crm.engine.begin() as connection:
        connection.execute(text(EFFECT_TABLE))


def deliveries(path: Path) -> list[dict]:
    """Every delivery attempt logged to *path*."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class JobsPlugin:
    """Registers ``test.effect`` (idempotent, counting) and ``test.flaky`` (always fails)."""

    def __init__(self, log: Path, *, sleep: float = 0.0, stall_after: int | None = None) -> None:
        self.sleep = sleep
        #: After this many deliveries the next job hangs (until the process is killed): a worker held mid-batch.
        self.stall_after = stall_after
        self.delivered = 0
        self.log = log
        self.worker = f"pid{os.getpid()}"

    @hookimpl
    def crm_register_jobs(self):
        return [
            JobHandler(name="test.effect", func=self.effect),
            JobHandler(name="test.batch_effect", func=self.effect, batch=True),
            JobHandler(
                name="test.flaky",
                func=self.flaky,
                max_attempts=3,
                backoff=timedelta(seconds=float(os.environ.get("TEST_FLAKY_BACKOFF", "10"))),
            ),
        ]

    def effect(self, call: JobCall) -> None:
        started = time.time()
        if self.sleep:
            time.sleep(self.sleep)
        if self.delivered == self.stall_after:
            time.sleep(600)
        self.delivered += 1
        with call.crm.transaction() as ctx:
            exists = ctx.session.execute(
                text("SELECT 1 FROM test_effect WHERE job_key = :k"), {"k": call.idempotency_key}
            ).first()
            if exists is None:  # idempotent: a repeat delivery changes nothing
                ctx.session.execute(
                    text("INSERT INTO test_effect (job_key, worker) VALUES (:k, :w)"),
                    {"k": call.idempotency_key, "w": self.worker},
                )
        record = {"key": call.idempotency_key, "worker": self.worker, "started": started, "finished": time.time()}
        with open(self.log, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        if call.payload.get("fail_first") and call.attempt == 1:
            raise RuntimeError(f"{call.idempotency_key} fails its first attempt")

    def flaky(self, call: JobCall) -> None:
        raise ConnectionError(f"the partner API is down (attempt {call.attempt})")


def make_crm():
    """Factory for subprocess workers (CRMCORE_CRM_FACTORY=tests.support.jobs_plugin:make_crm)."""
    from crmcore.crm import CRM

    url = os.environ["CRMCORE_DATABASE_URL"]
    sleep = float(os.environ.get("TEST_JOB_SLEEP", "0"))
    plugin = JobsPlugin(
        Path(os.environ["TEST_JOB_LOG"]), sleep=sleep, stall_after=int(os.environ.get("TEST_JOB_STALL_AFTER", "-1"))
    )
    return CRM(database_url=url, plugins=[plugin], environment="test")


def main() -> None:
    """Run a worker: ``python -m tests.support.jobs_plugin [--once] [--lease S] [--batch N]``."""
    import argparse
    import logging

    parser = argparse.ArgumentParser()
    parser.add_argument("--lease", type=float, default=300)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--poll", type=float, default=0.2)
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--backend", default="inline")
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    crm = make_crm()
    worker = crm.jobs.worker(
        batch_size=options.batch,
        poll_interval=options.poll,
        lease=timedelta(seconds=options.lease),
        backend=options.backend,
    )
    worker.run(once=options.once)


if __name__ == "__main__":
    main()

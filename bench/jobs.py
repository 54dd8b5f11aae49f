"""Job benchmarks (issue 3): no-op jobs/s with 1 and 4 workers and with Celery; due-timer lookup cost.

Run: python bench/jobs.py [--quick] [--runs N]. Needs PostgreSQL on 127.0.0.1 (and Redis
for the Celery figure). Baselines measured in the same run: one UPDATE and
COMMIT per job through plain SQLAlchemy (the floor of a commit-per-job
design), and the due-timer query at growing table sizes.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import ROOT, Report, scratch_postgresql, scratch_sqlite
from sqlalchemy import create_engine, func, select, text

from crmcore import CRM
from crmcore.models import Job

HERE = Path(__file__).resolve().parent


def fill(url: str, pending: int, due: int, handler: str = "bench.noop") -> None:
    """Insert *due* jobs due now and *pending* jobs due next year, fast."""
    engine = create_engine(url)
    now = datetime.now(UTC).replace(tzinfo=None)
    later = now + timedelta(days=365)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(
                "INSERT INTO job (handler, payload, idempotency_key, state, due_at, available_at, attempts, "
                "max_attempts, created_at) SELECT :h, '{}', 'k' || g, 'pending', "
                "CASE WHEN g <= :due THEN CAST(:now AS timestamptz) ELSE CAST(:later AS timestamptz) END, "
                "CASE WHEN g <= :due THEN CAST(:now AS timestamptz) ELSE CAST(:later AS timestamptz) END, 0, 8, "
                "CAST(:now AS timestamptz) FROM generate_series(1, :total) g"),
                {"h": handler, "due": due, "now": now.isoformat() + "+00:00", "later": later.isoformat() + "+00:00",
                 "total": pending + due})  # fmt: skip
        else:
            rows = [{"h": handler, "k": f"k{n}", "d": now if n < due else later} for n in range(pending + due)]
            connection.execute(text(
                "INSERT INTO job (handler, payload, idempotency_key, state, due_at, available_at, attempts, "
                "max_attempts, created_at) VALUES (:h, '{}', :k, 'pending', :d, :d, 0, 8, :d)"), rows)  # fmt: skip
        connection.execute(text("ANALYZE" if engine.dialect.name == "sqlite" else "ANALYZE job"))
    engine.dispose()


def migrate(url: str) -> CRM:
    crm = CRM(database_url=url, plugins=[], environment="test")
    crm.db_upgrade()
    return crm


def done_count(crm: CRM) -> int:
    with crm.transaction(readonly=True) as ctx:
        return int(ctx.session.scalar(select(func.count()).where(Job.handler.like("bench.%"), Job.state == "done")))


def run_workers(url: str, count: int, jobs: int, handler: str = "bench.noop") -> float:
    """Jobs/s of *count* running worker processes, from the commit of *jobs* due jobs until all are done.

    The workers start (and import crmcore) before the jobs exist, so start-up is not counted.
    """
    env = {**os.environ, "CRMCORE_DATABASE_URL": url, "PYTHONPATH": f"{HERE}:{ROOT}"}
    crm = migrate(url)
    command = [sys.executable, str(HERE / "_jobs_worker.py"), "200"]
    workers = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(count)]  # fmt: skip
    while len(crm.jobs.workers()) < count:
        time.sleep(0.05)
    time.sleep(0.5)  # past the first poll, which runs the core's periodic job
    fill(url, 0, jobs, handler)
    start = time.perf_counter()
    while done_count(crm) < jobs:
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(60)
    crm.dispose()
    return jobs / elapsed


def commit_per_job_floor(url: str, jobs: int) -> float:
    """Baseline: the same rows marked done one UPDATE + COMMIT at a time, plain SQLAlchemy."""
    migrate(url)
    fill(url, 0, jobs)
    engine = create_engine(url)
    start = time.perf_counter()
    with engine.connect() as connection:
        for job_id in range(1, jobs + 1):
            connection.execute(text("UPDATE job SET state = 'done' WHERE id = :id"), {"id": job_id})
            connection.commit()
    elapsed = time.perf_counter() - start
    engine.dispose()
    return jobs / elapsed


def run_celery(url: str, jobs: int, handler: str = "bench.noop") -> float | None:
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "CRMCORE_DATABASE_URL": url, "PYTHONPATH": f"{HERE}:{ROOT}", "CRMCORE_CELERY_QUEUE": queue,
           "CRMCORE_BROKER_URL": "redis://127.0.0.1:6379/0", "CRMCORE_CRM_FACTORY": "_jobs_worker:make_crm"}
    crm = CRM(database_url=url, plugins=[], environment="test", jobs_backend="celery", celery_queue=queue)
    crm.db_upgrade()
    fill(url, 0, jobs, handler)
    celery = subprocess.Popen([sys.executable, "-m", "celery", "-A", "crmcore.jobs.celery_app", "worker", "--pool",
                               "threads", "--concurrency", "8", "-Q", queue, "--without-gossip", "--without-mingle",
                               "--without-heartbeat", "--loglevel", "WARNING"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(4)  # let the worker connect
    dispatcher = crm.jobs.worker(backend="celery", batch_size=500, poll_interval=0.05)
    import threading

    thread = threading.Thread(target=dispatcher.run, daemon=True)
    start = time.perf_counter()
    thread.start()
    deadline = start + 300
    while done_count(crm) < jobs and time.perf_counter() < deadline:
        time.sleep(0.1)
    elapsed = time.perf_counter() - start
    dispatcher.stop()
    thread.join(30)
    celery.send_signal(signal.SIGTERM)
    celery.wait(60)
    if done_count(crm) < jobs:
        return None
    return jobs / elapsed


def lookup_time(url: str, pending: int, due: int) -> float:
    """Median time of the worker's due-job query with *pending* future rows and *due* due rows (ms)."""
    crm = migrate(url)
    fill(url, pending, due)
    engine = crm.engine
    query = (select(Job.id).where(Job.state.in_(["pending", "running", "queued"]), Job.available_at <= func.now()
                                  if engine.dialect.name == "postgresql" else Job.available_at <= datetime.now(UTC))
             .order_by(Job.available_at).limit(100))  # fmt: skip
    samples = []
    with engine.connect() as connection:
        for _ in range(25):
            start = time.perf_counter()
            found = connection.execute(query).all()
            samples.append((time.perf_counter() - start) * 1000)
            assert len(found) == min(due, 100)
    crm.dispose()
    samples.sort()
    return samples[len(samples) // 2]


def median_rate(runs: int, database: Callable[[str], str | None], measure: Callable[[str], float | None]) -> float:
    """The median of *runs* measurements, each on a fresh database (a failed run counts as 0)."""
    return statistics.median(measure(url) or 0.0 if (url := database(f"run{n}")) else 0.0 for n in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=3, help="runs per throughput figure (the median is shown)")
    options = parser.parse_args()
    jobs = 2_000 if options.quick else 20_000
    small = jobs // 10  # for the one-commit-per-job paths, which are an order of magnitude slower
    report = Report("crmcore job benchmarks")
    tag = uuid.uuid4().hex[:6]

    def pg(name: str) -> Callable[[str], str | None]:
        return lambda run: scratch_postgresql(f"crmbench_jobs_{tag}_{name}_{run}")

    def sqlite(name: str) -> Callable[[str], str | None]:
        return lambda run: scratch_sqlite(f"{name}_{run}.db")

    if pg("probe")("0"):
        floor = median_rate(options.runs, pg("floor"), lambda url: commit_per_job_floor(url, small))
        for workers in (1, 4):
            rate = median_rate(options.runs, pg(f"w{workers}"), lambda url, w=workers: run_workers(url, w, jobs))
            report.add(f"no-op jobs (batch=True), {workers} worker(s), PostgreSQL (jobs/s)", rate, "/s", floor,
                       ">= 2,000/s with 4")  # fmt: skip
        for workers in (1, 4):
            rate = median_rate(options.runs, pg(f"each{workers}"),
                               lambda url, w=workers: run_workers(url, w, small, "bench.noop_each"))  # fmt: skip
            report.add(f"no-op jobs, a transaction each, {workers} worker(s), PostgreSQL (jobs/s)", rate, "/s", floor)
        celery_runs = (("bench.noop", "batch=True", jobs // 4), ("bench.noop_each", "a transaction each", small))
        for handler, kind, count in celery_runs:
            rate = median_rate(options.runs, pg(f"celery_{handler[6:]}"),
                               lambda url, h=handler, n=count: run_celery(url, n, h))  # fmt: skip
            report.add(f"no-op jobs ({kind}), Celery backend (Redis, 8 threads), PostgreSQL (jobs/s)", rate, "/s",
                       floor)  # fmt: skip
        sizes = (10_000, 100_000) if options.quick else (10_000, 100_000, 1_000_000)
        first = None
        for size in sizes:
            url = scratch_postgresql(f"crmbench_jobs_{tag}_lookup{size}")
            assert url
            ms = lookup_time(url, size, 100)
            first = first or ms
            report.add(f"due-timer lookup, 100 due among {size:,} pending, PostgreSQL (ms)", ms, "ms", first,
                       "< 5 ms at 1M", higher_is_better=False)  # fmt: skip
    report.add("no-op jobs (batch=True), 1 worker, SQLite (jobs/s)",
               median_rate(options.runs, sqlite("jobs"), lambda url: run_workers(url, 1, jobs)), "/s")  # fmt: skip
    report.add("no-op jobs, a transaction each, 1 worker, SQLite (jobs/s)",
               median_rate(options.runs, sqlite("each"), lambda url: run_workers(url, 1, small, "bench.noop_each")),
               "/s")  # fmt: skip
    report.print()


if __name__ == "__main__":
    main()

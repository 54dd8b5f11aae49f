"""Fault tests with real worker processes: SIGKILL mid-batch, four workers, the database going away."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from crmcore.clock import SystemClock
from crmcore.models import Job, JobWorker

from .support.jobs_plugin import JobsPlugin, create_tables, deliveries
from .support.tcp_proxy import TCPProxy

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture
def crm(crm_factory, tmp_path):
    crm = crm_factory(plugins=[JobsPlugin(tmp_path / "deliveries.jsonl")], clock=SystemClock())
    create_tables(crm)
    return crm


def start_worker(url: str, log: Path, *args: str, sleep: float = 0.0, stall: int | None = None) -> subprocess.Popen:
    """A worker process; its output goes to a file next to *log* (``process.output_path``).

    With *stall*, the job after that many deliveries hangs, holding the worker in the middle of a batch.
    """
    env = {
        **os.environ,
        "CRMCORE_DATABASE_URL": url,
        "TEST_JOB_LOG": str(log),
        "TEST_JOB_SLEEP": str(sleep),
        "PYTHONPATH": str(ROOT),
        **({"TEST_JOB_STALL_AFTER": str(stall)} if stall is not None else {}),
    }
    output_path = log.with_name(f"worker-{time.monotonic_ns()}.log")
    with open(output_path, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.jobs_plugin", *args],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    process.output_path = output_path  # type: ignore[attr-defined]
    return process


def enqueue(crm, count: int, handler: str = "test.effect") -> None:
    with crm.transaction() as ctx:
        for n in range(count):
            ctx.enqueue(handler, {"n": n}, key=f"job-{n:05d}")


def counts(crm) -> tuple[int, int]:
    with crm.transaction(readonly=True) as ctx:
        done = ctx.session.scalar(select(func.count()).where(Job.state == "done", Job.handler.like("test.%")))
        effects = ctx.session.scalar(text("SELECT COUNT(*) FROM test_effect"))
    return done, effects


def running_workers(crm) -> int:
    """Workers that have started (their SIGTERM handler is installed before they register)."""
    with crm.transaction(readonly=True) as ctx:
        return ctx.session.scalar(select(func.count()).select_from(JobWorker)) or 0


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> str:
    """SIGTERM the worker, expect a clean exit, and return what it logged."""
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    output = process.output_path.read_text()  # type: ignore[attr-defined]
    assert process.returncode == 0, output[-3000:]
    return output


BOTH_KINDS = pytest.mark.parametrize("handler", ["test.effect", "test.batch_effect"])


@BOTH_KINDS
def test_sigkill_mid_batch_loses_nothing_and_runs_nothing_twice(crm, crm_url, tmp_path, handler):
    log = tmp_path / "deliveries.jsonl"
    enqueue(crm, 1000, handler)
    # The 151st job hangs, so the kill lands in the middle of the second batch whatever the machine's load.
    first = start_worker(crm_url, log, "--lease", "2", "--batch", "100", sleep=0.002, stall=150)
    wait_for(lambda: len(deliveries(log)) >= 150, 60, "the first worker to get going")
    first.kill()  # SIGKILL: no clean-up at all
    first.wait(10)
    with crm.transaction(readonly=True) as ctx:
        orphaned = ctx.session.scalar(select(func.count()).where(Job.state == "running"))
    assert orphaned > 0, "the kill should have left claimed jobs behind"

    second = start_worker(crm_url, log, "--lease", "2", "--batch", "100")
    wait_for(lambda: counts(crm) == (1000, 1000), 90, "every job to be done")
    stop(second)
    done, effects = counts(crm)
    assert done == effects == 1000
    with crm.transaction(readonly=True) as ctx:
        keys = ctx.session.scalars(text("SELECT job_key FROM test_effect")).all()
    assert len(set(keys)) == 1000  # each effect exactly once
    attempts = defaultdict(int)
    for record in deliveries(log):
        attempts[record["key"]] += 1
    assert set(attempts) == set(keys)  # nothing lost: every job was delivered at least once


@pytest.mark.databases("postgresql", "mariadb")
@BOTH_KINDS
def test_four_workers_never_run_a_job_concurrently_twice(crm, crm_url, tmp_path, handler):
    log = tmp_path / "deliveries.jsonl"
    enqueue(crm, 10_000, handler)
    workers = [start_worker(crm_url, log, "--batch", "50") for _ in range(4)]
    wait_for(lambda: counts(crm) == (10_000, 10_000), 240, "10,000 jobs")
    for worker in workers:
        stop(worker)
    by_key = defaultdict(list)
    for record in deliveries(log):
        by_key[record["key"]].append((record["started"], record["finished"], record["worker"]))
    assert len(by_key) == 10_000
    for key, runs in by_key.items():
        runs.sort()
        for (_, end, _), (start, _, _) in itertools.pairwise(runs):
            assert start >= end, f"{key} ran concurrently twice: {runs}"
    assert len({worker for runs in by_key.values() for _, _, worker in runs}) == 4


@pytest.mark.databases("postgresql", "mariadb")
@BOTH_KINDS
def test_database_going_away_mid_run_pauses_the_worker_and_loses_nothing(crm, crm_url, tmp_path, handler):
    log = tmp_path / "deliveries.jsonl"
    url = make_url(crm_url)
    proxy = TCPProxy(url.host or "127.0.0.1", url.port or (5432 if url.get_backend_name() == "postgresql" else 3306))
    try:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        enqueue(crm, 300, handler)
        worker = start_worker(proxied, log, "--batch", "20", "--poll", "0.1", sleep=0.005)
        wait_for(lambda: counts(crm)[0] >= 50, 120, "some jobs done")
        proxy.cut()
        time.sleep(3)
        stalled = counts(crm)
        time.sleep(1)
        assert counts(crm) == stalled, "nothing can finish while the database is away"
        proxy.restore()
        try:
            wait_for(lambda: counts(crm) == (300, 300), 120, "the worker to resume and finish")
        except AssertionError as exc:
            worker.kill()
            said = worker.output_path.read_text()[-4000:]
            raise AssertionError(f"{exc}: {counts(crm)}; worker said:\n{said}") from None
        output = stop(worker)
    finally:
        proxy.close()
    assert "database unavailable" in output
    with crm.transaction(readonly=True) as ctx:
        done_keys = set(
            ctx.session.scalars(select(Job.idempotency_key).where(Job.handler == handler, Job.state == "done"))
        )
        effect_keys = set(ctx.session.scalars(text("SELECT job_key FROM test_effect")))
    assert done_keys == effect_keys  # nothing marked done that did not run


@BOTH_KINDS
def test_sigterm_finishes_the_job_in_hand_and_releases_the_rest(crm, crm_url, tmp_path, handler):
    log = tmp_path / "deliveries.jsonl"
    enqueue(crm, 20, handler)
    worker = start_worker(crm_url, log, "--batch", "20", sleep=0.3)
    wait_for(lambda: len(deliveries(log)) >= 2, 30, "two jobs")
    started = time.monotonic()
    output = stop(worker)
    assert time.monotonic() - started < 5
    assert "stopping after the job in hand" in output
    done, effects = counts(crm)
    assert done == effects and 2 <= done < 20
    with crm.transaction(readonly=True) as ctx:
        states = dict(
            ctx.session.execute(select(Job.state, func.count()).where(Job.handler == handler).group_by(Job.state)).all()
        )
        attempts = set(ctx.session.scalars(select(Job.attempts).where(Job.state == "pending")))
    assert states.get("running", 0) == 0
    assert states["pending"] == 20 - done and attempts == {0}


@pytest.mark.databases("sqlite")
def test_a_second_worker_on_sqlite_is_warned(crm, crm_url, tmp_path):
    log = tmp_path / "deliveries.jsonl"
    first = start_worker(crm_url, log)
    wait_for(lambda: running_workers(crm) == 1, 120, "the first worker to start")
    second = start_worker(crm_url, log)
    wait_for(lambda: running_workers(crm) == 2, 120, "the second worker to start")  # it has checked by then
    stop(first)
    assert "SQLite serializes writes" in stop(second)

"""The Celery backend with a real broker (Redis, RabbitMQ) and a real Celery worker process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from crmcore.clock import SystemClock
from crmcore.models import Job

from .support.jobs_plugin import JobsPlugin, create_tables, deliveries

ROOT = Path(__file__).resolve().parent.parent
BROKERS = {"redis": ("redis://127.0.0.1:6379/0", 6379), "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672//", 5672)}
pytestmark = pytest.mark.slow


def reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture(params=sorted(BROKERS))
def broker(request):
    url, port = BROKERS[request.param]
    if not reachable(port):
        message = f"{request.param} broker at 127.0.0.1:{port} is not reachable"
        if os.environ.get("CRMCORE_TEST_REQUIRE_SERVERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def celery_crm(crm_factory, broker, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_FLAKY_BACKOFF", "0.2")
    crm = crm_factory(
        plugins=[JobsPlugin(tmp_path / "deliveries.jsonl")],
        clock=SystemClock(),
        jobs_backend="celery",
        broker_url=broker,
        celery_queue=f"crmtest-{uuid.uuid4().hex[:8]}",
    )
    create_tables(crm)
    return crm


@pytest.fixture
def celery_worker(celery_crm, tmp_path):
    """A real `celery -A crmcore.jobs.celery_app worker` process for this CRM."""
    settings = celery_crm.settings
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TEST_JOB_LOG": str(tmp_path / "deliveries.jsonl"),
        "CRMCORE_DATABASE_URL": celery_crm.engine.url.render_as_string(hide_password=False),
        "CRMCORE_BROKER_URL": settings.broker_url,
        "CRMCORE_CELERY_QUEUE": settings.celery_queue,
        "CRMCORE_CRM_FACTORY": "tests.support.jobs_plugin:make_crm",
        "TEST_FLAKY_BACKOFF": "0.2",
    }
    output = open(tmp_path / "celery.log", "w")  # noqa: SIM115 - open for the worker's whole life
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "crmcore.jobs.celery_app",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "-Q",
            settings.celery_queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
    output.close()


def dispatch_until(crm, predicate, timeout=90):
    worker = crm.jobs.worker(backend="celery", poll_interval=0.1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.2)
    finally:
        worker.stop()
        thread.join(30)


def states(crm, handler):
    with crm.transaction(readonly=True) as ctx:
        return dict(
            ctx.session.execute(select(Job.state, func.count()).where(Job.handler == handler).group_by(Job.state)).all()
        )


def test_celery_workers_run_outbox_jobs_once_with_the_same_dead_letter_rules(celery_crm, celery_worker, tmp_path):
    with celery_crm.transaction() as ctx:
        for n in range(200):
            ctx.enqueue("test.effect", key=f"c-{n}")
        ctx.enqueue("test.flaky", key="partner-push")
    dispatch_until(
        celery_crm,
        lambda: states(celery_crm, "test.effect") == {"done": 200} and states(celery_crm, "test.flaky") == {"dead": 1},
    )
    with celery_crm.transaction(readonly=True) as ctx:
        assert ctx.session.scalar(text("SELECT COUNT(DISTINCT job_key) FROM test_effect")) == 200
    [dead] = celery_crm.jobs.list(state="dead")
    assert dead.attempts == 3 and "the partner API is down (attempt 3)" in dead.last_error
    assert {r["worker"] for r in deliveries(tmp_path / "deliveries.jsonl")} != {f"pid{os.getpid()}"}

    assert celery_crm.jobs.retry([dead.id]) == 1
    assert states(celery_crm, "test.flaky") == {"pending": 1}

    def died_again():
        again = celery_crm.jobs.list(handler="test.flaky")[0]
        return again.state == "dead" and again.finished_at > dead.finished_at and again.attempts == 3

    dispatch_until(celery_crm, died_again)


def test_a_duplicated_message_runs_the_job_once(celery_crm, celery_worker, tmp_path):
    from crmcore.jobs import outbox
    from crmcore.jobs.celery_app import publish

    celery_crm.jobs.enqueue("test.effect", key="twice")
    [claimed] = outbox.claim(celery_crm, "dispatcher", 10, timedelta(minutes=5), to_state="queued", count_attempt=False)
    for _ in range(3):
        publish(celery_crm, [claimed.id])
    deadline = time.monotonic() + 60
    while states(celery_crm, "test.effect") != {"done": 1}:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1)
    assert [r["key"] for r in deliveries(tmp_path / "deliveries.jsonl")] == ["twice"]


def test_celery_workers_commit_batch_handlers_jobs_together_and_retry_a_failing_one(
    celery_crm, celery_worker, tmp_path
):
    with celery_crm.transaction() as ctx:
        for n in range(100):
            ctx.enqueue("test.batch_effect", {"fail_first": n == 7}, key=f"b-{n:03d}")
    dispatch_until(celery_crm, lambda: states(celery_crm, "test.batch_effect") == {"done": 100})
    with celery_crm.transaction(readonly=True) as ctx:
        assert ctx.session.scalar(text("SELECT COUNT(DISTINCT job_key) FROM test_effect")) == 100
    runs = [r["key"] for r in deliveries(tmp_path / "deliveries.jsonl")]
    assert runs.count("b-007") == 2 and len(runs) == 101  # the failing job ran again; nothing else did
    attempts = {j.idempotency_key: j.attempts for j in celery_crm.jobs.list(handler="test.batch_effect", limit=100)}
    assert attempts.pop("b-007") == 2 and set(attempts.values()) == {1}

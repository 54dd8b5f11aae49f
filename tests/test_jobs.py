"""The outbox and timers: once per key, after commit only, retries, dead letters, periodic jobs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from crmcore import hookimpl
from crmcore.errors import NotFound, ValidationError
from crmcore.registry import JobHandler, PeriodicJob

from .support.jobs_plugin import JobsPlugin, create_tables, deliveries


@pytest.fixture
def crm_plugins(tmp_path):
    return [JobsPlugin(tmp_path / "deliveries.jsonl")]


@pytest.fixture
def crm(crm_factory, crm_plugins):
    crm = crm_factory(plugins=crm_plugins)
    create_tables(crm)
    return crm


def effects(crm):
    with crm.transaction(readonly=True) as ctx:
        return sorted(r[0] for r in ctx.session.execute(text("SELECT job_key FROM test_effect")))


def test_same_key_twice_is_one_job_and_nothing_runs_before_commit(crm, run_due_jobs):
    with crm.transaction() as ctx:
        ctx.enqueue("test.effect", {"n": 1}, key="k1")
        ctx.enqueue("test.effect", {"n": 2}, key="k1")
        assert effects(crm) == []
    assert [j.payload for j in crm.jobs.list(handler="test.effect")] == [{"n": 1}]
    run_due_jobs()
    assert effects(crm) == ["k1"]


def test_rolled_back_transaction_queues_nothing(crm, run_due_jobs):
    with pytest.raises(ValidationError), crm.transaction() as ctx:
        ctx.enqueue("test.effect", key="k1")
        raise ValidationError({"x": "no"})
    assert crm.jobs.list() == []


def test_timers_run_when_due_and_can_be_moved_or_cancelled(crm, clock, run_due_jobs):
    with crm.transaction() as ctx:
        ctx.enqueue("test.effect", key="due-in-1h", delay=timedelta(hours=1))
        ctx.enqueue("test.effect", key="moved", delay=timedelta(hours=1))
        ctx.enqueue("test.effect", key="cancelled", delay=timedelta(hours=1))
    with crm.transaction() as ctx:
        assert ctx.reschedule_job("moved", clock.now() + timedelta(hours=3))
        assert ctx.cancel_jobs("cancel", prefix=True) == 1
    run_due_jobs()
    assert effects(crm) == []
    clock.advance(hours=1)
    run_due_jobs()
    assert effects(crm) == ["due-in-1h"]
    clock.advance(hours=2)
    run_due_jobs()
    assert effects(crm) == ["due-in-1h", "moved"]


def test_failing_handler_retries_with_backoff_then_dies_and_can_be_retried(crm, clock, run_due_jobs, cli):
    with crm.transaction() as ctx:
        ctx.enqueue("test.flaky", key="push-1")
    run_due_jobs()
    [job] = crm.jobs.list(handler="test.flaky")
    assert (job.state, job.attempts) == ("pending", 1)
    assert job.available_at == clock.now() + timedelta(seconds=10)
    clock.advance(seconds=9)
    run_due_jobs()
    assert crm.jobs.list(handler="test.flaky")[0].attempts == 1  # not yet: backoff
    clock.advance(seconds=1)
    run_due_jobs()
    assert crm.jobs.list(handler="test.flaky")[0].available_at == clock.now() + timedelta(seconds=20)  # doubled
    clock.advance(seconds=20)
    run_due_jobs()
    [dead] = crm.jobs.list(state="dead")
    assert dead.attempts == 3 and "the partner API is down (attempt 3)" in dead.last_error

    listed = cli("jobs", "list", "--state", "dead", "--format", "json")
    assert listed.exit_code == 0 and '"push-1"' in listed.output
    stats = cli("jobs", "stats", "--format", "csv")
    assert "test.flaky,0,0,0,0,0,1,0," in stats.output

    assert cli("jobs", "retry", str(dead.id)).output.strip() == "1 job(s) queued again"
    [again] = crm.jobs.list(handler="test.flaky")
    assert (again.state, again.attempts) == ("pending", 0)
    with pytest.raises(NotFound):
        crm.jobs.retry([again.id])


def test_dead_job_hook_is_told(crm_factory, clock):
    dead = []

    class Alert:
        @hookimpl
        def crm_register_jobs(self):
            return [JobHandler(name="x.fail", func=self.fail, max_attempts=1)]

        def fail(self, call):
            raise RuntimeError("boom")

        @hookimpl
        def crm_job_dead(self, job, ctx):
            dead.append((job.handler, job.last_error))

    crm = crm_factory(plugins=[Alert()])
    crm.jobs.enqueue("x.fail", key="a")
    crm.jobs.run_due()
    assert dead == [("x.fail", "RuntimeError: boom")]


def test_unknown_handler_is_retried_not_lost(crm, run_due_jobs):
    crm.jobs.enqueue("plugin.not.enabled", key="z")
    run_due_jobs()
    [job] = crm.jobs.list(handler="plugin.not.enabled")
    assert job.state == "pending" and "no job handler 'plugin.not.enabled'" in job.last_error


def test_periodic_jobs_run_once_per_period(crm_factory, clock):
    runs = []

    class Hourly:
        @hookimpl
        def crm_register_jobs(self):
            return [
                JobHandler(name="x.tick", func=lambda call: runs.append(call.due_at)),
                PeriodicJob(name="tick", handler="x.tick", every=timedelta(hours=1)),
            ]

    crm = crm_factory(plugins=[Hourly()])
    crm.jobs.run_due()
    crm.jobs.run_due()
    clock.advance(minutes=59)
    crm.jobs.run_due()
    clock.advance(minutes=1)
    crm.jobs.run_due()
    assert [r.isoformat() for r in runs] == ["2026-01-05T09:00:00+00:00", "2026-01-05T10:00:00+00:00"]


def test_a_database_writing_handler_commits_with_its_done_mark(crm, run_due_jobs):
    for n in range(5):
        crm.jobs.enqueue("test.effect", key=f"k{n}")
    run_due_jobs()
    assert effects(crm) == [f"k{n}" for n in range(5)]
    assert {j.state for j in crm.jobs.list(handler="test.effect")} == {"done"}


def test_stop_releases_claimed_jobs_not_yet_started(crm):
    from crmcore.jobs import outbox

    for n in range(3):
        crm.jobs.enqueue("test.effect", key=f"k{n}")
    claimed = outbox.claim(crm, "w1", 10, timedelta(minutes=5))
    ran = outbox.execute(crm, claimed, "w1", stop=iter([False, True, True]).__next__)
    assert ran == 1
    states = sorted((j.idempotency_key, j.state, j.attempts) for j in crm.jobs.list(handler="test.effect"))
    assert states == [("k0", "done", 1), ("k1", "pending", 0), ("k2", "pending", 0)]


def test_a_claim_outlasting_half_its_lease_hands_back_the_jobs_not_started(crm_factory, tmp_path):
    import time

    class Slow:
        @hookimpl
        def crm_register_jobs(self):
            return [JobHandler(name="test.slow", func=lambda call: time.sleep(0.4))]

    crm = crm_factory(plugins=[JobsPlugin(tmp_path / "deliveries.jsonl"), Slow()])
    for n in range(4):
        crm.jobs.enqueue("test.slow", key=f"s{n}")
    worker = crm.jobs.worker(lease=timedelta(seconds=1.5))
    assert worker.run_batch() == 2  # 0.4 s each: the third would start after 0.75 s
    states = sorted((j.idempotency_key, j.state, j.attempts) for j in crm.jobs.list(handler="test.slow"))
    assert states == [("s0", "done", 1), ("s1", "done", 1), ("s2", "pending", 0), ("s3", "pending", 0)]
    assert worker.run_batch() == 2
    assert {(j.state, j.attempts) for j in crm.jobs.list(handler="test.slow")} == {("done", 1)}


def test_expired_lease_is_recovered(crm, clock, run_due_jobs):
    from crmcore.jobs import outbox

    crm.jobs.enqueue("test.effect", key="orphan")
    assert len(outbox.claim(crm, "dead-worker", 10, timedelta(minutes=5))) == 1  # and then it died
    run_due_jobs()
    assert effects(crm) == []
    clock.advance(minutes=5)
    run_due_jobs()
    assert effects(crm) == ["orphan"]
    assert crm.jobs.list(handler="test.effect")[0].attempts == 2


def done_keys(crm, handler="test.batch_effect"):
    return sorted(j.idempotency_key for j in crm.jobs.list(handler=handler, state="done"))


def test_a_failing_job_in_a_batch_is_retried_and_the_others_commit(crm, clock, run_due_jobs):
    with crm.transaction() as ctx:
        for n in range(5):
            ctx.enqueue("test.batch_effect", {"fail_first": n == 2}, key=f"b{n}")
    run_due_jobs()
    assert effects(crm) == ["b0", "b1", "b3", "b4"]  # b2's write rolled back with its savepoint
    assert done_keys(crm) == ["b0", "b1", "b3", "b4"]
    [failed] = crm.jobs.list(handler="test.batch_effect", state="pending")
    assert (failed.idempotency_key, failed.attempts) == ("b2", 1)
    assert "b2 fails its first attempt" in failed.last_error
    assert failed.available_at == clock.now() + timedelta(seconds=10)
    clock.advance(seconds=10)
    run_due_jobs()
    assert effects(crm) == done_keys(crm) == ["b0", "b1", "b2", "b3", "b4"]


def test_a_batch_commits_once_however_many_jobs_it_holds(crm, monkeypatch):
    from crmcore.jobs import outbox

    monkeypatch.setattr(outbox, "BATCH_SECONDS", 60.0)  # a loaded machine must not split the batch
    crm.jobs.run_due()  # the core's daily periodic job, out of the way
    commits = []
    event.listen(crm.engine, "commit", lambda connection: commits.append(1))

    def commits_to_run(count: int, prefix: str) -> int:
        with crm.transaction() as ctx:
            for n in range(count):
                ctx.enqueue("test.batch_effect", key=f"{prefix}{n}")
        commits.clear()
        assert crm.jobs.run_due() == count
        return len(commits)

    assert commits_to_run(3, "few") == commits_to_run(60, "many")
    assert len(effects(crm)) == 63


def test_batched_and_unbatched_jobs_run_in_due_order(crm, clock, run_due_jobs):
    for n, handler in enumerate(["test.batch_effect", "test.effect", "test.batch_effect", "test.batch_effect"]):
        crm.jobs.enqueue(handler, key=f"k{n}", due_at=clock.now() - timedelta(minutes=10 - n))
    run_due_jobs()
    assert effects(crm) == ["k0", "k1", "k2", "k3"]
    assert {j.state for j in crm.jobs.list()} == {"done"}


def test_stop_in_a_batch_commits_what_ran_and_releases_the_rest(crm, tmp_path):
    from crmcore.jobs import outbox

    with crm.transaction() as ctx:
        for n in range(5):
            ctx.enqueue("test.batch_effect", key=f"k{n}")
    claimed = outbox.claim(crm, "w1", 10, timedelta(minutes=5))
    ran = outbox.execute(crm, claimed, "w1", stop=lambda: len(deliveries(tmp_path / "deliveries.jsonl")) >= 2)
    assert ran == 2
    states = sorted((j.idempotency_key, j.state, j.attempts) for j in crm.jobs.list(handler="test.batch_effect"))
    assert states == [("k0", "done", 1), ("k1", "done", 1), ("k2", "pending", 0), ("k3", "pending", 0),
                      ("k4", "pending", 0)]  # fmt: skip
    assert effects(crm) == ["k0", "k1"]


def test_a_batch_whose_commit_fails_runs_again_job_by_job(crm, tmp_path, run_due_jobs, monkeypatch):
    from crmcore.jobs import outbox

    monkeypatch.setattr(outbox, "BATCH_SECONDS", 60.0)  # one batch of four, however loaded the machine
    with crm.transaction() as ctx:
        for n in range(4):
            ctx.enqueue("test.batch_effect", key=f"k{n}")
    failures = []

    @event.listens_for(crm.engine, "commit")
    def fail_the_batch(connection):
        ran = len(deliveries(tmp_path / "deliveries.jsonl"))
        if ran == 4 and not failures:  # the batch's commit, once every job of it ran
            failures.append(ran)
            raise OperationalError("COMMIT", {}, Exception("deadlock detected"))

    run_due_jobs()
    assert failures == [4]
    assert effects(crm) == done_keys(crm) == ["k0", "k1", "k2", "k3"]  # nothing lost, each effect once
    runs = sorted(record["key"] for record in deliveries(tmp_path / "deliveries.jsonl"))
    assert runs == ["k0", "k0", "k1", "k1", "k2", "k2", "k3", "k3"]  # the rolled-back batch ran again
    assert {j.attempts for j in crm.jobs.list()} == {1}

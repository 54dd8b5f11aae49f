"""``crm worker`` and ``crm jobs list|stats|retry``."""

from __future__ import annotations

from datetime import timedelta

import click

from crmcore.cli import get_crm
from crmcore.cli.output import emit, format_option

JOB_COLUMNS = ["id", "handler", "state", "due_at", "attempts", "max_attempts", "idempotency_key", "last_error"]


@click.command()
@click.option("--once", is_flag=True, help="Run what is due, then exit (for cron).")
@click.option("--batch", "batch_size", default=100, show_default=True, help="Jobs claimed per round.")
@click.option("--poll", "poll_interval", default=1.0, show_default=True, help="Seconds between polls when idle.")
@click.option(
    "--lease",
    default=300.0,
    show_default=True,
    help="Seconds a claimed job stays reserved; a dead worker's jobs are retaken after it.",
)
@click.option(
    "--backend",
    type=click.Choice(["inline", "celery"]),
    help="Run jobs here (inline) or publish them to Celery workers (default: settings).",
)
@click.option("--name", help="Worker name in logs and stats (default: host:pid).")
def worker(once: bool, batch_size: int, poll_interval: float, lease: float, backend: str | None,
           name: str | None) -> None:  # fmt: skip
    """Run due jobs and timers until SIGTERM (finishing the job in hand).

    With the Celery backend this process is the dispatcher: it publishes due
    jobs to the broker, and `celery -A crmcore.jobs.celery_app worker` runs them.

    \b
    Examples:
      crm worker
      crm worker --once            # from cron
      crm --database-url postgresql://127.0.0.1/crm worker --backend celery
    """
    crm = get_crm()
    ran = crm.jobs.worker(
        name=name, batch_size=batch_size, poll_interval=poll_interval,
        lease=timedelta(seconds=lease), backend=backend,
    ).run(once=once)  # fmt: skip
    click.echo(f"worker stopped after {ran} job(s)", err=True)


@click.group()
def jobs() -> None:
    """The outbox: side effects and timers waiting, running, done or dead."""


@jobs.command("list")
@click.option("--state", type=click.Choice(["pending", "running", "queued", "done", "dead", "cancelled"]))
@click.option("--handler")
@click.option("--limit", default=100, show_default=True)
@format_option
def jobs_list(state: str | None, handler: str | None, limit: int, fmt: str) -> None:
    """List jobs, most recently due first.

    \b
    Example:
      crm jobs list --state dead
    """
    rows = get_crm().jobs.list(state=state, handler=handler, limit=limit)
    emit([{c: getattr(j, c) for c in JOB_COLUMNS} for j in rows], fmt, JOB_COLUMNS)


@jobs.command("stats")
@format_option
def jobs_stats(fmt: str) -> None:
    """Per handler: due, running, done, dead, and the oldest due job's age.

    \b
    Example:
      crm jobs stats --format json
    """
    columns = ["handler", "due", "pending", "running", "queued", "done", "dead", "cancelled", "oldest_due_age_s"]
    emit(get_crm().jobs.stats(), fmt, columns)


@jobs.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all-dead", is_flag=True, help="Retry every dead job.")
def jobs_retry(ids: tuple[int, ...], all_dead: bool) -> None:
    """Give dead jobs fresh attempts.

    \b
    Examples:
      crm jobs retry 17 18
      crm jobs retry --all-dead
    """
    count = get_crm().jobs.retry(list(ids) or None, all_dead=all_dead)
    click.echo(f"{count} job(s) queued again")


COMMANDS = [worker, jobs]

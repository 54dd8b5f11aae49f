"""Job hooks: handlers for the outbox and timers, and dead-letter notice."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.models import Job
    from crmcore.registry import JobHandler, PeriodicJob


@hookspec
def crm_register_jobs() -> list[JobHandler | PeriodicJob]:
    """Declare job handlers (by name) and periodic jobs.

    Called once at start-up. A service queues work with
    ``ctx.enqueue(handler_name, payload, key=...)``; after commit a worker calls
    the handler with a :class:`~crmcore.registry.JobCall`, at least once, so the
    handler must tolerate a repeat (use ``call.idempotency_key``). A handler
    whose every effect is a write to the CRM's database may declare
    ``batch=True``: its jobs then share transactions (a savepoint each, one
    commit per batch). A periodic job is scheduled by the worker every
    ``every``, once per period.

    :returns: A list of :class:`~crmcore.registry.JobHandler` and
        :class:`~crmcore.registry.PeriodicJob`.

    .. versionadded:: 0.1
    """


@hookspec
def crm_job_dead(job: Job, ctx: HookContext) -> None:
    """A job failed its last attempt and is now dead (dead-letter).

    Runs inside the transaction that marks it dead; alert someone here. Dead
    jobs stay visible in ``crm jobs list --state dead`` until retried with
    ``crm jobs retry``. All implementations run; return values are ignored.

    :param job: The dead job, with ``last_error`` and ``attempts``.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """

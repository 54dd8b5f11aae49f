"""Job handlers: the SLA timer (one pending job per metric run) and the Maildir poller."""

from __future__ import annotations

from datetime import timedelta

from crmcore.registry import JobCall, JobHandler, PeriodicJob
from crmcore_ticketing.engine import SLA_HANDLER
from crmcore_ticketing.mailin import POLL_HANDLER, poll_job
from crmcore_ticketing.models import SlaMetric, Ticket


def sla_job(call: JobCall) -> None:
    """Fire the points of a metric run that are due (warning, breach, escalation) and arm the next.

    A job whose generation is stale (the service moved the timer since) or
    whose run is fulfilled, paused or cancelled does nothing: the points are
    recomputed from the ticket's data every time, so each fires once.
    """
    from crmcore_ticketing.tickets import engine

    with call.crm.transaction() as ctx:
        run = ctx.session.get(SlaMetric, int(call.payload["metric_id"]))
        if run is None or run.timer_seq != call.payload.get("seq") or run.state != "active":
            return
        ticket = ctx.session.get(Ticket, run.ticket_id)
        if ticket is None:
            return
        run.timer_at = None  # this job is spent; refresh arms the next one
        sla = engine(ctx)
        sla.refresh(ticket, run)
        sla.update_next_due(ticket)


def registrations() -> list[JobHandler | PeriodicJob]:
    """The plugin's handlers and its periodic Maildir poll."""
    return [
        JobHandler(name=SLA_HANDLER, func=sla_job, batch=True,
                   help="SLA warnings, breaches and escalations of one metric"),
        JobHandler(name=POLL_HANDLER, func=poll_job, max_attempts=3, help="ingest mail from the configured Maildir"),
        PeriodicJob(name=POLL_HANDLER, handler=POLL_HANDLER, every=timedelta(minutes=1)),
    ]

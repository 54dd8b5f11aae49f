"""Mail batches: a message vetoed after it wrote its ticket, history and SLA timers rolls back alone."""

from __future__ import annotations

from typing import Any

import pytest
from crmcore_ticketing.models import HistoryEntry, SlaMetric, Ticket

from crmcore import hookimpl
from crmcore.errors import ValidationError
from crmcore.models import Contact, Job


class Quarantine:
    """Refuses any ticket whose subject says QUARANTINE, once its first message is in."""

    @hookimpl
    def crm_ticket_message_added(self, event: Any, ctx: Any) -> None:
        if "QUARANTINE" in ctx.session.get(Ticket, event.ticket_id).subject:
            raise ValidationError({"subject": "quarantined by policy"})


@pytest.fixture
def crm_plugins() -> list[Any]:
    return ["ticketing", Quarantine()]


def message(n: int, subject: str) -> bytes:
    return (f"From: Customer {n} <customer{n}@example.com>\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <batch-{n}@example.com>\r\nDate: Mon, 5 Jan 2026 10:00:00 +0100\r\n\r\n"
            f"Hello, message {n}.\r\n").encode()  # fmt: skip


def test_a_vetoed_message_leaves_no_history_timer_run_or_lead_and_the_rest_land(support, crm, standard_policy):
    batch = [("1", message(1, "Printer jam")), ("2", message(2, "QUARANTINE this")), ("3", message(3, "Login"))]
    results = support.mail.ingest_many(batch)
    assert [r.action for r in results] == ["created", "rejected", "created"]
    assert results[1].reason == "subject: quarantined by policy"
    with crm.transaction(readonly=True) as ctx:
        tickets = ctx.session.query(Ticket).order_by(Ticket.id).all()
        assert [t.subject for t in tickets] == ["Printer jam", "Login"]
        ids = {t.id for t in tickets}
        assert {h.ticket_id for h in ctx.session.query(HistoryEntry)} == ids
        runs = ctx.session.query(SlaMetric).all()
        assert len(runs) == 4 and {r.ticket_id for r in runs} == ids
        timers = ctx.session.query(Job).filter(Job.handler == "ticketing.sla").all()
        assert sorted(j.payload["metric_id"] for j in timers) == sorted(r.id for r in runs)
        assert ctx.session.query(Contact).filter(Contact.email == "customer2@example.com").count() == 0
    again = support.mail.ingest_many(batch)
    assert [r.action for r in again] == ["duplicate", "rejected", "duplicate"]


def test_a_later_batch_threads_by_tracking_number_and_by_references(support):
    [first, second] = support.mail.ingest_many([("1", message(1, "Printer jam")), ("2", message(2, "Login"))])
    by_number = message(3, f"Re: [{first.number}] Printer jam")
    by_reference = message(4, "Re: Login").replace(b"Date:", b"References: <other@x> <batch-2@example.com>\r\nDate:")
    results = support.mail.ingest_many([("3", by_number), ("4", by_reference), ("5", message(5, "New question"))])
    assert [(r.action, r.number) for r in results[:2]] == [("appended", first.number), ("appended", second.number)]
    assert results[2].action == "created" and results[2].number not in (first.number, second.number)

"""Connectors: pushes through the outbox, external ids stored, never a second copy; the file-drop connector."""

from __future__ import annotations

import shutil
import subprocess
from decimal import Decimal
from typing import Any

import pytest
from crmcore_accounting_bridge.connectors import Connector, push_job
from crmcore_accounting_bridge.models import ExternalRef
from sqlalchemy import select

from crmcore import hookimpl
from crmcore.models import Job

LEDGER = shutil.which("ledger")


class Ledgerly(Connector):
    """A stand-in for a remote accounting system: keeps what it was sent, can fail once."""

    name = "ledgerly"

    def __init__(self) -> None:
        self.received: list[tuple[str, Any, str]] = []
        self.fail_next = False

    def _take(self, kind: str, record: dict[str, Any], key: str) -> str:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("ledgerly is down")
        self.received.append((kind, record, key))
        return f"{kind}-{len(self.received)}"

    def push_customer(self, crm, customer, *, key):
        return self._take("customer", customer, key)

    def push_invoice(self, crm, invoice, *, customer_id, key):
        return self._take("invoice", {**invoice, "customer": customer_id}, key)

    def push_payment(self, crm, payment, *, invoice_id, key):
        return self._take("payment", {**payment, "invoice": invoice_id}, key)


class LedgerlyPlugin:
    def __init__(self) -> None:
        self.connector = Ledgerly()

    @hookimpl
    def crm_register_accounting_connectors(self):
        return [self.connector]


LEDGERLY = LedgerlyPlugin()


@pytest.fixture
def crm_plugins() -> list[Any]:
    LEDGERLY.connector.received.clear()
    return ["accounting_bridge", LEDGERLY]


@pytest.fixture
def accounting_settings(accounting_settings: dict[str, Any]) -> dict[str, Any]:
    return {**accounting_settings, "connectors": ["ledgerly", "file_drop"]}


def refs(crm: Any, connector: str) -> list[tuple[str, int, str]]:
    with crm.transaction(readonly=True) as ctx:
        rows = ctx.session.execute(select(ExternalRef.kind, ExternalRef.local_id, ExternalRef.external_id)
                                   .where(ExternalRef.connector == connector).order_by(ExternalRef.id))  # fmt: skip
        return [tuple(r) for r in rows]


def test_documents_are_pushed_once_after_commit_with_their_external_ids(crm, books, ada, products, run_due_jobs):
    sent = LEDGERLY.connector.received
    invoice = books.invoices.create(ada.id, lines=[{"sku": "PRO"}])
    books.invoices.create(ada.id, lines=[{"sku": "BOOK"}])
    books.payments.record(invoice.number, "119.00", reference="BANK-7")
    assert sent == []  # nothing leaves before the worker runs
    run_due_jobs()
    assert [(kind, key) for kind, _, key in sent] == [
        ("customer", "accounting_bridge.push:ledgerly:customer:1"),
        ("invoice", "accounting_bridge.push:ledgerly:invoice:1"),
        ("invoice", "accounting_bridge.push:ledgerly:invoice:2"),
        ("payment", "accounting_bridge.push:ledgerly:payment:1"),
    ]
    assert sent[1][1]["customer"] == "customer-1" and sent[1][1]["total"] == Decimal("119.00")
    assert sent[3][1]["invoice"] == "invoice-2"
    assert refs(crm, "ledgerly") == [("customer", 1, "customer-1"), ("invoice", 1, "invoice-2"),
                                     ("invoice", 2, "invoice-3"), ("payment", 1, "payment-4")]  # fmt: skip
    # A re-delivered job (the worker died before marking it done) pushes nothing again.
    with crm.transaction(readonly=True) as ctx:
        job = ctx.session.scalars(select(Job).where(Job.idempotency_key.like("%ledgerly:invoice:1"))).one()
    from crmcore.registry import JobCall

    push_job(JobCall(crm=crm, job_id=job.id, handler=job.handler, payload=job.payload,
                     idempotency_key=job.idempotency_key, attempt=2, due_at=job.due_at))  # fmt: skip
    assert len(sent) == 4


def test_a_failed_push_is_retried_and_still_sent_once(crm, books, ada, products, run_due_jobs, clock):
    from crmcore.models import JobState

    LEDGERLY.connector.fail_next = True
    books.invoices.create(ada.id, lines=[{"sku": "PRO"}])
    run_due_jobs()  # the customer's push fails; the invoice's pushes the customer first, then itself
    assert [kind for kind, _, _ in LEDGERLY.connector.received] == ["customer", "invoice"]
    clock.advance(minutes=5)
    run_due_jobs()  # the retry finds the customer's external id: nothing sent again
    assert [kind for kind, _, _ in LEDGERLY.connector.received] == ["customer", "invoice"]
    assert [r[0] for r in refs(crm, "ledgerly")] == ["customer", "invoice"]
    with crm.transaction(readonly=True) as ctx:
        states = ctx.session.scalars(select(Job.state).where(Job.idempotency_key.like("%:ledgerly:%"))).all()
    assert states and set(states) == {JobState.DONE}


def test_file_drop_writes_includes_that_beancount_and_ledger_read(crm, books, ada, grace, products, run_due_jobs,
                                                                  tmp_path):  # fmt: skip
    from beancount import loader

    first = books.invoices.create(ada.id, lines=[{"sku": "PRO", "quantity": 2}])
    books.invoices.create(grace.id, lines=[{"sku": "BOOK"}])
    books.invoices.credit_note(first.number, reason="one returned", lines=[{"sku": "PRO"}])
    books.payments.record(first.number, "150.00", reference="BANK-9")  # 31.00 over: credit
    run_due_jobs()
    drop = tmp_path / "drop"
    assert sorted(p.relative_to(drop).as_posix() for p in drop.rglob("*.beancount")) == [
        "customers/C1.beancount", "customers/C2.beancount", "invoices/CN-2026-00001.beancount",
        "invoices/INV-2026-00001.beancount", "invoices/INV-2026-00002.beancount", "main.beancount",
        "payments/P1.beancount"]  # fmt: skip
    entries, errors, _ = loader.load_file(str(drop / "main.beancount"))
    assert errors == []
    assert sum(1 for e in entries if type(e).__name__ == "Transaction") == 4
    assert [r[2] for r in refs(crm, "file_drop")][:2] == ["customers/C1", "invoices/INV-2026-00001"]
    if LEDGER is None:
        pytest.skip("the ledger program is not installed (make system-deps installs it)")
    run = subprocess.run([LEDGER, "-f", str(drop / "main.ledger"), "--strict", "balance", "Bank", "Credit"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0 and run.stderr == "", run.stderr
    balances = {line.split()[-1]: line.split()[0] for line in run.stdout.splitlines() if "EUR" in line}
    assert balances["Assets:Bank"] == "150.00" and balances["Liabilities:CustomerCredit"] == "-31.00"


def test_a_posted_batch_queues_each_push_once_and_posting_it_again_queues_nothing(
    crm, books, ada, grace, products, run_due_jobs
):
    batch = [{"source": f"shop:{n}", "contact": contact.id, "lines": [{"sku": "PRO"}]}
             for n, contact in enumerate([ada, ada, grace], start=1)]  # fmt: skip
    assert [r.action for r in books.invoices.post_many(batch)] == ["posted"] * 3
    assert [r.action for r in books.invoices.post_many(batch)] == ["exists"] * 3
    with crm.transaction(readonly=True) as ctx:
        keys = ctx.session.scalars(select(Job.idempotency_key).where(Job.idempotency_key.like("%:ledgerly:%"))).all()
    assert sorted(keys) == sorted(f"accounting_bridge.push:ledgerly:{kind}:{n}"
                                  for kind, n in [("customer", ada.id), ("customer", grace.id), ("invoice", 1),
                                                  ("invoice", 2), ("invoice", 3)])  # fmt: skip
    run_due_jobs()
    assert sorted(kind for kind, _, _ in LEDGERLY.connector.received) == ["customer"] * 2 + ["invoice"] * 3

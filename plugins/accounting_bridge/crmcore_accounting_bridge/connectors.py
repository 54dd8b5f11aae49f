"""Connectors push customers, invoices and payments to an external system, through the outbox.

Issuing an invoice or recording a payment queues one ``accounting_bridge.push``
job per enabled connector (setting ``connectors``) and document, keyed
``accounting_bridge.push:<connector>:<kind>:<id>``, so a document is queued
once. The job calls the connector after commit and stores the id it returns in
``accounting_bridge_external_ref``; a re-delivered job finds that id and does
nothing. If a crash falls between the external system's answer and that
commit, the job runs again with the same ``key``: connectors pass it on as the
remote system's idempotency key (Xero's ``Idempotency-Key``, QuickBooks'
``requestid``) or, like the file-drop connector, write to a path derived from
the document, so a second run overwrites instead of copying.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crmcore.errors import ConfigError
from crmcore.models import Contact
from crmcore.registry import JobCall, JobHandler
from crmcore_accounting_bridge.config import Config
from crmcore_accounting_bridge.models import Entry, ExternalRef, Invoice, Payment

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM

PUSH_HANDLER = "accounting_bridge.push"
KINDS = ("customer", "invoice", "payment")
_POSTING_CURRENCY = re.compile(r"^  \S+\s+-?[0-9.]+ ([A-Z]{3})$", re.MULTILINE)
_POSTING_ACCOUNT = re.compile(
    r"^  ((?:Assets|Liabilities|Equity|Income|Expenses)(?::[A-Z0-9][A-Za-z0-9-]*)+) ", re.MULTILINE
)


class Connector:
    """Base class of connectors: override the three ``push_*`` methods; each returns the external id.

    Each receives the document as plain data, the external ids of what it
    refers to, and *key*, stable across retries of the same push.
    """

    #: The name users put in the ``connectors`` setting.
    name: str = ""

    def push_customer(self, crm: CRM, customer: dict[str, Any], *, key: str) -> str:
        """Create (or find by *key*) the customer; return its external id."""
        raise NotImplementedError

    def push_invoice(self, crm: CRM, invoice: dict[str, Any], *, customer_id: str, key: str) -> str:
        """Create (or find by *key*) the invoice or credit note; return its external id."""
        raise NotImplementedError

    def push_payment(self, crm: CRM, payment: dict[str, Any], *, invoice_id: str | None, key: str) -> str:
        """Create (or find by *key*) the payment; return its external id."""
        raise NotImplementedError


def connectors(crm: CRM) -> dict[str, Connector]:
    """Every registered connector by name."""
    found: dict[str, Connector] = {}
    for connector in crm.plugins.collect("crm_register_accounting_connectors"):
        if connector.name in found:
            raise ConfigError(f"two accounting connectors are named {connector.name!r}")
        found[connector.name] = connector
    return found


def queue_push(ctx: HookContext, kind: str, local_id: int) -> None:
    """Queue a push of one document to every enabled connector (idempotent by key)."""
    queue_pushes(ctx, [(kind, local_id)])


def queue_pushes(ctx: HookContext, documents: Sequence[tuple[str, int]]) -> None:
    """Queue pushes of many ``(kind, id)`` documents to every enabled connector, with one executemany."""
    from crmcore.jobs.outbox import insert_jobs

    connectors = Config.of(ctx.crm).connectors
    if not connectors or not documents:
        return
    attempts = ctx.crm.jobs.max_attempts(PUSH_HANDLER)
    insert_jobs(ctx.session, [
        {"handler": PUSH_HANDLER, "payload": {"connector": name, "kind": kind, "id": local_id},
         "idempotency_key": f"{PUSH_HANDLER}:{name}:{kind}:{local_id}", "due_at": ctx.now, "max_attempts": attempts}
        for kind, local_id in dict.fromkeys(documents) for name in connectors
    ], now=ctx.now)  # fmt: skip
    ctx.on_commit(ctx.crm.jobs.notify)


def external_id(ctx: HookContext, connector: str, kind: str, local_id: int) -> str | None:
    """The external id a connector gave a document, if it was pushed."""
    found: str | None = ctx.scalar(select(ExternalRef.external_id).where(
        ExternalRef.connector == connector, ExternalRef.kind == kind, ExternalRef.local_id == local_id))  # fmt: skip
    return found


def _push(ctx: HookContext, connector: Connector, kind: str, local_id: int) -> str:
    """Push one document (and first what it refers to) unless it was pushed; returns its external id."""
    from crmcore_accounting_bridge.invoices import contact_label, invoice_record
    from crmcore_accounting_bridge.journal import entry_record, postings_of

    known = external_id(ctx, connector.name, kind, local_id)
    if known is not None:
        return known
    key = f"{PUSH_HANDLER}:{connector.name}:{kind}:{local_id}"
    if kind == "customer":
        contact = ctx.session.get(Contact, local_id)
        assert contact is not None
        record = {"id": contact.id, "name": contact_label(contact), "email": contact.email,
                  "country": contact.country}  # fmt: skip
        found = connector.push_customer(ctx.crm, record, key=key)
    elif kind == "invoice":
        from crmcore_accounting_bridge.models import InvoiceLine

        invoice = ctx.session.get(Invoice, local_id)
        assert invoice is not None
        customer = _push(ctx, connector, "customer", invoice.contact_id)
        lines = ctx.session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id)
                                    .order_by(InvoiceLine.position)).all()  # fmt: skip
        record = invoice_record(invoice, lines)
        entries = ctx.session.scalars(select(Entry).where(Entry.invoice_id == invoice.id, Entry.payment_id.is_(None))
                                      .order_by(Entry.id)).all()  # fmt: skip
        postings = postings_of(ctx, [e.id for e in entries])
        record["entries"] = [entry_record(e, postings.get(e.id, [])) for e in entries]
        found = connector.push_invoice(ctx.crm, record, customer_id=customer, key=key)
    elif kind == "payment":
        payment = ctx.session.get(Payment, local_id)
        assert payment is not None
        invoice_ref = _push(ctx, connector, "invoice", payment.invoice_id) if payment.invoice_id else None
        entries = ctx.session.scalars(select(Entry).where(Entry.payment_id == payment.id).order_by(Entry.id)).all()
        postings = postings_of(ctx, [e.id for e in entries])
        record = {"id": payment.id, "contact_id": payment.contact_id, "invoice_id": payment.invoice_id,
                  "amount": payment.amount, "applied": payment.applied, "credit": payment.credit,
                  "currency": payment.currency, "received_on": payment.received_on, "reference": payment.reference,
                  "entries": [entry_record(e, postings.get(e.id, [])) for e in entries]}  # fmt: skip
        found = connector.push_payment(ctx.crm, record, invoice_id=invoice_ref, key=key)
    else:
        raise ValueError(f"unknown document kind {kind!r}")
    ctx.session.add(ExternalRef(connector=connector.name, kind=kind, local_id=local_id, external_id=str(found)[:200],
                                pushed_at=ctx.now))  # fmt: skip
    ctx.session.flush()
    return str(found)


def push_job(call: JobCall) -> None:
    """Deliver one queued push (``accounting_bridge.push``)."""
    name, kind, local_id = call.payload["connector"], call.payload["kind"], int(call.payload["id"])
    found = connectors(call.crm)
    if name not in found:
        raise ConfigError(f"no accounting connector named {name!r}; registered: {', '.join(found) or 'none'}")
    with call.crm.transaction() as ctx:
        _push(ctx, found[name], kind, local_id)


def registrations() -> list[JobHandler]:
    """The push handler."""
    return [JobHandler(name=PUSH_HANDLER, func=push_job, help="push a customer, invoice or payment to a connector")]


class FileDropConnector(Connector):
    """Writes each document as Beancount and ledger include files under ``file_drop_dir``.

    ``customers/C<id>``, ``invoices/<number>`` and ``payments/P<id>`` (``.beancount``
    and ``.ledger``), plus ``main.beancount`` / ``main.ledger``, which declare the
    accounts and include every document: point Beancount, Fava or ledger at
    them, or include them from your own books. The external id is the file's
    path relative to the folder; a second push rewrites the same file.
    """

    name = "file_drop"

    def _root(self, crm: CRM) -> Path:
        return Path(Config.of(crm).file_drop_dir).resolve()

    def _write(self, crm: CRM, folder: str, stem: str, beancount: str, ledger: str) -> str:
        from crmcore_accounting_bridge.export import write_atomically

        root = self._root(crm)
        write_atomically(root / folder / f"{stem}.beancount", [beancount])
        write_atomically(root / folder / f"{stem}.ledger", [ledger])
        self._write_main(root)
        return f"{folder}/{stem}"

    def _write_main(self, root: Path) -> None:
        from crmcore_accounting_bridge.export import OPEN_DATE, write_atomically

        accounts: set[str] = set()
        currencies: set[str] = set()
        files = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.beancount"))
        for name in files:
            text = (root / name).read_text(encoding="utf-8")
            accounts.update(_POSTING_ACCOUNT.findall(text))
            currencies.update(_POSTING_CURRENCY.findall(text))
        opens = "".join(f"{OPEN_DATE} open {a}\n" for a in sorted(accounts))
        write_atomically(root / "main.beancount",
                         [opens, "\n", *(f'include "{n}"\n' for n in files)])  # fmt: skip
        declared = "tag crm-entry\ntag crm-document\n" + "".join(f"commodity {c}\n" for c in sorted(currencies))
        declared += "".join(f"account {a}\n" for a in sorted(accounts))
        write_atomically(root / "main.ledger",
                         [declared, "\n", *(f"include {n[: -len('.beancount')]}.ledger\n" for n in files)])  # fmt: skip

    def push_customer(self, crm: CRM, customer: dict[str, Any], *, key: str) -> str:
        """A Beancount ``custom`` directive (and a ledger comment) naming the customer."""
        from crmcore_accounting_bridge.export import OPEN_DATE, _quote

        label = f"C{customer['id']}"
        beancount = (f'{OPEN_DATE} custom "crm-customer" {_quote(label)} {_quote(customer["name"])} '
                     f'{_quote(customer.get("email") or "")}\n')  # fmt: skip
        ledger = f"; customer {label}: {customer['name']} <{customer.get('email') or ''}>\n"
        return self._write(crm, "customers", label, beancount, ledger)

    def push_invoice(self, crm: CRM, invoice: dict[str, Any], *, customer_id: str, key: str) -> str:
        """The invoice's journal entries."""
        return self._write(crm, "invoices", invoice["number"], *self._entries(invoice["entries"], invoice["number"]))

    def push_payment(self, crm: CRM, payment: dict[str, Any], *, invoice_id: str | None, key: str) -> str:
        """The payment's journal entry."""
        return self._write(crm, "payments", f"P{payment['id']}", *self._entries(payment["entries"], ""))

    @staticmethod
    def _entries(entries: list[dict[str, Any]], document: str) -> tuple[str, str]:
        from crmcore_accounting_bridge.export import ExportedEntry, render_beancount, render_ledger

        exported = [ExportedEntry(id=e["id"], posted_on=e["posted_on"], kind=e["kind"], document=document,
                                  payee=e["payee"], narration=e["narration"], currency=e["currency"],
                                  postings=tuple((p["account"], p["amount"]) for p in e["postings"]))
                    for e in entries]  # fmt: skip
        return "".join(map(render_beancount, exported)), "".join(map(render_ledger, exported))

"""The double-entry journal: balanced entries, written once, corrected by reversal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import func, select

from crmcore import permissions
from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.services.base import Service
from crmcore_accounting_bridge.calc import round_money
from crmcore_accounting_bridge.config import ACCOUNT, Config
from crmcore_accounting_bridge.models import Entry, Invoice, Posting

if TYPE_CHECKING:
    from crmcore.context import HookContext

ZERO = Decimal(0)


@attrs.frozen
class Leg:
    """One posting to be written: account, signed amount (debit +, credit −), the customer."""

    account: str
    amount: Decimal
    contact_id: int | None = None


def post(
    ctx: HookContext,
    *,
    kind: str,
    posted_on: date,
    payee: str,
    narration: str,
    currency: str,
    legs: Sequence[Leg],
    invoice_id: int | None = None,
    payment_id: int | None = None,
    reverses_id: int | None = None,
) -> Entry:
    """Write one balanced entry in the unit of work; an unbalanced one is refused and nothing is written.

    Legs of zero are dropped (a tax of 0.00 posts nothing); an entry needs at
    least two legs, valid account names, and amounts that sum to exactly zero.
    """
    kept = checked_legs(legs, currency, narration)
    entry = Entry(posted_on=posted_on, kind=kind, payee=payee[:255], narration=narration[:255],
                  currency=currency, invoice_id=invoice_id, payment_id=payment_id, reverses_id=reverses_id,
                  created_at=ctx.now)  # fmt: skip
    ctx.session.add(entry)
    ctx.session.flush()
    ctx.session.add_all(
        [Posting(entry_id=entry.id, account=leg.account, amount=leg.amount, contact_id=leg.contact_id) for leg in kept]
    )
    return entry


def checked_legs(legs: Sequence[Leg], currency: str, narration: str) -> list[Leg]:
    """The non-zero legs of an entry; ValidationError unless they balance on valid accounts."""
    kept = [leg for leg in legs if leg.amount != 0]
    errors: dict[str, str] = {}
    balance = sum((leg.amount for leg in kept), ZERO)
    if balance != 0:
        errors["balance"] = f"entry does not balance: debits and credits differ by {balance} {currency}"
    if len(kept) < 2:
        errors["postings"] = "an entry needs at least two non-zero postings"
    bad = sorted({leg.account for leg in kept if not ACCOUNT.match(leg.account)})
    if bad:
        errors["account"] = f"invalid account name(s): {', '.join(bad)}"
    if errors:
        raise ValidationError(errors, f"refused journal entry {narration!r}: " + "; ".join(errors.values()))
    return kept


def entry_record(entry: Entry, postings: Sequence[Posting]) -> dict[str, Any]:
    """An entry and its postings as plain data."""
    return {
        "id": entry.id, "posted_on": entry.posted_on, "kind": entry.kind, "payee": entry.payee,
        "narration": entry.narration, "currency": entry.currency, "invoice_id": entry.invoice_id,
        "payment_id": entry.payment_id, "reverses_id": entry.reverses_id,
        "postings": [{"account": p.account, "amount": round_money(p.amount, entry.currency)} for p in postings],
    }  # fmt: skip


class Journal(Service):
    """Read the journal, post manual entries, reverse entries, the trial balance."""

    def post(self, *, narration: str, legs: Sequence[tuple[str, Any]], currency: str | None = None,
             posted_on: date | None = None, payee: str = "", actor: Any = None) -> Entry:  # fmt: skip
        """Post a manual entry from ``(account, amount)`` pairs; refused unless it balances."""
        from crmcore.db import money
        from crmcore.validation import currency_code

        code = currency_code(currency, self.crm.settings.currency)
        built = [Leg(account, money(amount, "amount")) for account, amount in legs]
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "accounting.books")
            entry = post(ctx, kind="manual", posted_on=posted_on or local_today(ctx), payee=payee,
                         narration=narration, currency=code, legs=built)  # fmt: skip
            ctx.audit("accounting.entry.post", "accounting_entry", entry.id, {"narration": narration})
        return entry

    def reverse(self, entry_id: int, *, reason: str, actor: Any = None) -> Entry:
        """Post the mirror image of an entry (a posted entry is never edited)."""
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "accounting.books")
            entry = reverse_in(ctx, entry_id, reason)
            ctx.audit("accounting.entry.reverse", "accounting_entry", entry_id, {"reason": reason})
        return entry

    def entries(
        self, *, start: date | None = None, end: date | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Entries with their postings, oldest first."""
        query = select(Entry).order_by(Entry.id)
        if start:
            query = query.where(Entry.posted_on >= start)
        if end:
            query = query.where(Entry.posted_on <= end)
        if limit:
            query = query.limit(limit)
        with self.crm.transaction(readonly=True) as ctx:
            entries = list(ctx.session.scalars(query))
            postings = postings_of(ctx, [e.id for e in entries])
            return [entry_record(e, postings.get(e.id, [])) for e in entries]

    def balances(self, *, end: date | None = None) -> list[dict[str, Any]]:
        """The trial balance: each account's balance per currency (debits positive)."""
        query = (
            select(Posting.account, Entry.currency, func.sum(Posting.amount))
            .join(Entry, Entry.id == Posting.entry_id)
            .group_by(Posting.account, Entry.currency)
            .order_by(Posting.account, Entry.currency)
        )
        if end:
            query = query.where(Entry.posted_on <= end)
        with self.crm.transaction(readonly=True) as ctx:
            return [{"account": a, "currency": c, "balance": round_money(Decimal(b), c)}
                    for a, c, b in ctx.session.execute(query)]  # fmt: skip


def postings_of(ctx: HookContext, entry_ids: Sequence[int]) -> dict[int, list[Posting]]:
    """The postings of the given entries, by entry id, in posting order."""
    found: dict[int, list[Posting]] = {}
    for start in range(0, len(entry_ids), 500):
        chunk = entry_ids[start : start + 500]
        for posting in ctx.session.scalars(select(Posting).where(Posting.entry_id.in_(chunk)).order_by(Posting.id)):
            found.setdefault(posting.entry_id, []).append(posting)
    return found


def reverse_in(ctx: HookContext, entry_id: int, reason: str) -> Entry:
    """Reverse *entry_id* in the unit of work: same accounts, opposite amounts, today."""
    original = ctx.session.get(Entry, entry_id)
    if original is None:
        raise NotFound(f"no journal entry {entry_id}")
    if original.kind == "reversal":
        raise Conflict(f"entry {entry_id} is a reversal; post a new entry instead")
    if ctx.first(Entry, Entry.reverses_id == entry_id) is not None:
        raise Conflict(f"entry {entry_id} is already reversed")
    legs = [Leg(p.account, -p.amount, p.contact_id) for p in postings_of(ctx, [entry_id]).get(entry_id, [])]
    return post(ctx, kind="reversal", posted_on=local_today(ctx), payee=original.payee,
                narration=f"Reversal of entry {entry_id}: {reason}"[:255], currency=original.currency,
                legs=legs, invoice_id=original.invoice_id, payment_id=original.payment_id,
                reverses_id=entry_id)  # fmt: skip


def local_today(ctx: HookContext) -> date:
    """Today in the CRM's time zone."""
    return ctx.now.astimezone(ctx.crm.settings.zone).date()


def balance_in(ctx: HookContext, contact_id: int) -> dict[str, Any]:
    """Open balance and credit per currency (from the journal), and the overdue invoices."""
    config = Config.of(ctx.crm)
    rows = ctx.session.execute(
        select(Posting.account, Entry.currency, func.sum(Posting.amount))
        .join(Entry, Entry.id == Posting.entry_id)
        .where(Posting.contact_id == contact_id,
               Posting.account.in_([config.account("receivable"), config.account("customer_credit")]))
        .group_by(Posting.account, Entry.currency)
    ).all()  # fmt: skip
    open_balance = {c: Decimal(v) for a, c, v in rows if a == config.account("receivable") and v}
    credit = {c: -Decimal(v) for a, c, v in rows if a == config.account("customer_credit") and v}
    today = local_today(ctx)
    overdue = ctx.session.scalars(
        select(Invoice).where(Invoice.contact_id == contact_id, Invoice.status == "open", Invoice.due_on < today)
        .order_by(Invoice.due_on)
    ).all()  # fmt: skip
    return {
        "open_balance": {c: str(round_money(v, c)) for c, v in sorted(open_balance.items())},
        "customer_credit": {c: str(round_money(v, c)) for c, v in sorted(credit.items())},
        "overdue_invoices": [{"number": i.number, "due_on": i.due_on.isoformat(),
                              "open_amount": str(round_money(i.open_amount, i.currency)), "currency": i.currency,
                              "days_overdue": (today - i.due_on).days} for i in overdue],
    }  # fmt: skip

"""``crm accounting``: invoices, credit notes, payments, the journal, exports."""

from __future__ import annotations

from typing import Any

import click

from crmcore.cli import get_crm
from crmcore.cli.output import emit, emit_record, format_option
from crmcore.errors import ValidationError

INVOICE_COLUMNS = ["number", "kind", "contact_id", "issued_on", "due_on", "currency", "total", "open_amount", "status"]


def _books() -> Any:
    from crmcore_accounting_bridge import accounting as books

    return books(get_crm())


def _done(fmt: str, text: str, record: dict[str, Any]) -> None:
    if fmt == "table":
        click.echo(text)
    else:
        emit_record(record, fmt)


def parse_line(text: str) -> dict[str, Any]:
    """``sku=PRO,quantity=2,discount=10,taxes=VAT19+VAT7`` → a line mapping."""
    line: dict[str, Any] = {}
    for part in text.split(","):
        if "=" not in part:
            raise ValidationError({"line": f"{part!r} in {text!r} is not NAME=VALUE (sku=PRO,quantity=2)"})
        name, value = (s.strip() for s in part.split("=", 1))
        line[name] = [c for c in value.split("+") if c] if name == "taxes" else value
    return line


def make_group() -> click.Group:
    """Build ``crm accounting`` afresh for each CLI (click caches per-command state)."""

    @click.group()
    def accounting() -> None:
        """Invoices, credit notes, payments, the double-entry journal and its exports."""


    @accounting.group()
    def invoice() -> None:
        """Issue and read invoices."""


    @invoice.command("create")
    @click.argument("contact")
    @click.option("--line", "lines", multiple=True, required=True,
                  help="A line: sku=…, description=…, quantity=…, price=…, discount=… (percent), taxes=CODE+CODE.")
    @click.option("--currency", default=None, help="ISO 4217 code (default: the CRM's).")
    @click.option("--terms", "terms_days", type=int, default=None, help="Days to pay (default: payment_terms_days).")
    @click.option("--due", "due_on", default=None, help="Due date YYYY-MM-DD (instead of --terms).")
    @click.option("--inclusive/--exclusive", "tax_inclusive", default=None, help="Prices include tax, or not.")
    @click.option("--rep", default=None, help="The sales rep (email or id).")
    @click.option("--notes", default=None)
    @format_option
    def invoice_create(contact: str, lines: tuple[str, ...], currency: str | None, terms_days: int | None,
                       due_on: str | None, tax_inclusive: bool | None, rep: str | None, notes: str | None,
                       fmt: str) -> None:  # fmt: skip
        """Issue an invoice to CONTACT (id or email).

        \b
        Example:
          crm accounting invoice create ada@example.com --line sku=PRO,quantity=2 \\
              --line "description=Setup,price=150,discount=10,taxes=VAT19"
        """
        books = _books()
        made = books.invoices.create(contact, lines=[parse_line(t) for t in lines], currency=currency,
                                     terms_days=terms_days, due_on=due_on, tax_inclusive=tax_inclusive, rep=rep,
                                     notes=notes)  # fmt: skip
        record = books.invoices.get(made.number)
        _done(fmt, f"invoice {made.number}: {record['total']} {made.currency}, due {made.due_on}", record)


    @invoice.command("from-opportunity")
    @click.argument("opportunity_id", type=int)
    @format_option
    def invoice_from_opportunity(opportunity_id: int, fmt: str) -> None:
        """Invoice a won opportunity.

        \b
        Example:
          crm accounting invoice from-opportunity 12
        """
        made = _books().invoices.from_opportunity(opportunity_id)
        record = _books().invoices.get(made.number)
        _done(fmt, f"invoice {made.number}: {record['total']} {made.currency}", record)


    @invoice.command("from-purchase")
    @click.argument("purchase_id", type=int)
    @format_option
    def invoice_from_purchase(purchase_id: int, fmt: str) -> None:
        """Invoice a recorded purchase.

        \b
        Example:
          crm accounting invoice from-purchase 7
        """
        made = _books().invoices.from_purchase(purchase_id)
        record = _books().invoices.get(made.number)
        _done(fmt, f"invoice {made.number}: {record['total']} {made.currency}", record)


    @invoice.command("list")
    @click.option("--contact", default=None, help="Only this customer's (id or email).")
    @click.option("--status", type=click.Choice(["open", "paid", "credited", "overdue"]), default=None)
    @click.option("--kind", type=click.Choice(["invoice", "credit_note"]), default=None)
    @click.option("--limit", type=int, default=100, show_default=True)
    @format_option
    def invoice_list(contact: str | None, status: str | None, kind: str | None, limit: int, fmt: str) -> None:
        """List invoices and credit notes, newest first.

        \b
        Example:
          crm accounting invoice list --status overdue --format csv
        """
        emit(_books().invoices.list(contact=contact, status=status, kind=kind, limit=limit), fmt, INVOICE_COLUMNS)


    @invoice.command("show")
    @click.argument("number")
    @format_option
    def invoice_show(number: str, fmt: str) -> None:
        """Show an invoice with its lines.

        \b
        Example:
          crm accounting invoice show INV-2026-00001 --format json
        """
        record = _books().invoices.get(number)
        if fmt != "table":
            emit_record(record, fmt)
            return
        lines = record.pop("lines")
        emit_record(record, fmt)
        click.echo()
        emit(lines, fmt, ["position", "description", "quantity", "unit_price", "discount", "net", "tax", "gross"])


    @accounting.command("credit-note")
    @click.argument("number")
    @click.option("--reason", required=True, help="Why the customer is refunded.")
    @click.option("--line", "lines", multiple=True, help="Lines to credit (default: the whole invoice).")
    @format_option
    def credit_note(number: str, reason: str, lines: tuple[str, ...], fmt: str) -> None:
        """Refund an invoice (or part of it) with a credit note.

        \b
        Example:
          crm accounting credit-note INV-2026-00001 --reason "returned" --line sku=PRO,quantity=1
        """
        books = _books()
        made = books.invoices.credit_note(number, reason=reason, lines=[parse_line(t) for t in lines] or None)
        record = books.invoices.get(made.id)
        _done(fmt, f"credit note {made.number} for {number}: {record['total']} {made.currency}", record)


    @accounting.command("pay")
    @click.argument("number")
    @click.argument("amount")
    @click.option("--date", "received_on", default=None, help="Day received, YYYY-MM-DD (default: today).")
    @click.option("--reference", default=None, help="The bank's reference (recording it twice is refused).")
    @click.option("--currency", default=None)
    @format_option
    def pay(number: str, amount: str, received_on: str | None, reference: str | None, currency: str | None,
            fmt: str) -> None:  # fmt: skip
        """Record a payment of an invoice; an overpayment is kept as the customer's credit.

        \b
        Example:
          crm accounting pay INV-2026-00001 238.00 --date 2026-02-01 --reference BANK-991
        """
        made = _books().payments.record(number, amount, received_on=received_on, reference=reference, currency=currency)
        text = f"payment {made.reference}: {made.applied} {made.currency} applied to {number}"
        if made.credit:
            text += f"; overpaid by {made.credit} {made.currency}, kept as the customer's credit"
        _done(fmt, text, {"id": made.id, "invoice": number, "amount": made.amount, "applied": made.applied,
                          "credit": made.credit, "currency": made.currency, "reference": made.reference})  # fmt: skip


    @accounting.command("import-payments")
    @click.argument("path", type=click.Path(dir_okay=False))
    @format_option
    def import_payments(path: str, fmt: str) -> None:
        """Import payments from a CSV: invoice, amount, date, customer, currency, reference.

        Rows match invoices by number (checked against customer and amount) or by
        customer and exact open amount. Unmatched rows are listed; overpayments are
        kept as credit and said so; a second import of the same file records nothing.

        \b
        Example:
          crm accounting import-payments bank-2026-02.csv
        """
        report = _books().payments.import_csv(path)
        if fmt != "table":
            found = {"recorded": report.recorded, "duplicates": report.duplicates, "unmatched": report.unmatched}
            emit_record(found, fmt)
            return
        click.echo(f"{len(report.recorded)} payment(s) recorded, {len(report.duplicates)} already recorded, "
                   f"{len(report.unmatched)} unmatched")  # fmt: skip
        for row in report.credit:
            click.echo(f"line {row['line']}: {row['invoice']} overpaid by {row['credit']}: "
                       "kept as the customer's credit")
        for row in report.unmatched:
            click.echo(f"line {row['line']}: not matched: {row['reason']}")


    @accounting.command("export")
    @click.option("--format", "fmt", type=click.Choice(["beancount", "ledger", "csv"]), required=True)
    @click.option("--from", "start", default=None, help="First posting day, YYYY-MM-DD.")
    @click.option("--to", "end", default=None, help="Last posting day, YYYY-MM-DD.")
    @click.option("--output", required=True, type=click.Path(dir_okay=False), help="The file to write or extend.")
    def export(fmt: str, start: str | None, end: str | None, output: str) -> None:
        """Write the journal to a Beancount, ledger or CSV file: only the entries it lacks.

        Exporting again (or after a crash) adds only new entries; nothing is duplicated.

        \b
        Example:
          crm accounting export --format beancount --from 2026-01-01 --to 2026-03-31 --output books.beancount
        """
        result = _books().exports.export(fmt, output, start=start, end=end)
        click.echo(f"{result.written} new entries written to {result.path} ({result.total} in the file, "
                   f"{result.bytes} bytes)")  # fmt: skip


    @accounting.command("balance")
    @click.argument("contact")
    @format_option
    def balance(contact: str, fmt: str) -> None:
        """A customer's open balance, credit and overdue invoices.

        \b
        Example:
          crm accounting balance ada@example.com
        """
        emit_record(_books().payments.balance(contact), fmt)


    @accounting.command("trial-balance")
    @click.option("--to", "end", default=None, help="Balances at the end of this day, YYYY-MM-DD.")
    @format_option
    def trial_balance(end: str | None, fmt: str) -> None:
        """Every account's balance (debits positive).

        \b
        Example:
          crm accounting trial-balance --format csv
        """
        from crmcore.validation import parse_date

        emit(_books().journal.balances(end=parse_date(end, "to")), fmt, ["account", "currency", "balance"])


    @accounting.command("entries")
    @click.option("--from", "start", default=None)
    @click.option("--to", "end", default=None)
    @click.option("--limit", type=int, default=100, show_default=True)
    @format_option
    def entries(start: str | None, end: str | None, limit: int, fmt: str) -> None:
        """List journal entries with their postings.

        \b
        Example:
          crm accounting entries --from 2026-01-01 --format json
        """
        from crmcore.validation import parse_date

        found = _books().journal.entries(start=parse_date(start, "from"), end=parse_date(end, "to"), limit=limit)
        if fmt == "json":
            emit_record({"entries": found}, fmt)
            return
        rows = [{"entry": e["id"], "posted_on": e["posted_on"], "narration": e["narration"], "account": p["account"],
                 "amount": p["amount"], "currency": e["currency"]} for e in found for p in e["postings"]]  # fmt: skip
        emit(rows, fmt, ["entry", "posted_on", "narration", "account", "amount", "currency"])


    @accounting.command("reverse")
    @click.argument("entry_id", type=int)
    @click.option("--reason", required=True)
    def reverse(entry_id: int, reason: str) -> None:
        """Reverse a journal entry (posted entries are never edited).

        \b
        Example:
          crm accounting reverse 17 --reason "posted twice"
        """
        made = _books().journal.reverse(entry_id, reason=reason)
        click.echo(f"entry {made.id} reverses entry {entry_id}")


    @accounting.command("overdue")
    @format_option
    def overdue(fmt: str) -> None:
        """Report invoices that became overdue (the daily job does this too): hook, and a ticket if configured.

        \b
        Example:
          crm accounting overdue
        """
        emit(_books().payments.check_overdue(), fmt,
             ["number", "contact_id", "due_on", "open_amount", "currency", "days_overdue", "ticket"])  # fmt: skip

    return accounting

"""Invoices and credit notes: gapless numbers, Decimal lines and taxes, posted to the journal."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crmcore import permissions
from crmcore.db import gc_paused
from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.models import Contact, Opportunity, Product, Purchase, PurchaseLine
from crmcore.services.base import ContactRef, Service, get_contact, get_user
from crmcore.validation import clean_text, currency_code, parse_date
from crmcore_accounting_bridge.calc import InvoiceAmounts, LineInput, Tax, compute, round_money
from crmcore_accounting_bridge.config import Config
from crmcore_accounting_bridge.events import InvoiceIssued
from crmcore_accounting_bridge.journal import Leg, checked_legs, local_today
from crmcore_accounting_bridge.models import Entry, Invoice, InvoiceLine, Posting, Series

if TYPE_CHECKING:
    from crmcore.context import HookContext

ZERO = Decimal(0)


def next_numbers(ctx: HookContext, code: str, year: int, count: int = 1) -> list[str]:
    """Take the next *count* numbers of series *code* in *year*, gapless.

    The series row is read with ``FOR UPDATE`` (PostgreSQL, MariaDB) so that
    concurrent issuers queue on it; SQLite serializes writers already (every
    write transaction begins ``IMMEDIATE``). The counter moves in the issuing
    transaction, so a rollback gives its numbers back.
    """
    query = select(Series).where(Series.code == code, Series.year == year).with_for_update()
    series = ctx.session.scalars(query).first()
    if series is None:
        try:
            with ctx.session.begin_nested():
                series = Series(code=code, year=year, last_number=0)
                ctx.session.add(series)
                ctx.session.flush()
        except IntegrityError:  # another transaction created it first: queue on its lock
            series = ctx.session.scalars(query.execution_options(populate_existing=True)).one()
    first = series.last_number + 1
    series.last_number += count
    return [f"{code}-{year}-{n:05d}" for n in range(first, first + count)]


def _decimal(value: Any, field: str, default: Decimal | None = None) -> Decimal:
    if value is None or value == "":
        if default is None:
            raise ValidationError({field: "is required"})
        return default
    if isinstance(value, float):
        value = repr(value)
    try:
        result = Decimal(str(value).strip().rstrip("%"))
    except InvalidOperation:
        raise ValidationError({field: f"{value!r} is not a number"}) from None
    if not result.is_finite():
        raise ValidationError({field: f"{value!r} is not a finite number"})
    return result


class _Line:
    """A validated line before arithmetic."""

    def __init__(self, *, product: Product | None, description: str, group: str, quantity: Decimal,
                 unit_price: Decimal, discount: Decimal, taxes: tuple[Tax, ...]) -> None:  # fmt: skip
        self.product = product
        self.description = description
        self.group = group
        self.quantity = quantity
        self.unit_price = unit_price
        self.discount = discount
        self.taxes = taxes


def build_line(ctx: HookContext, config: Config, raw: Mapping[str, Any], currency: str, *, credit: bool) -> _Line:
    """Validate one line: ``sku`` or ``description``, ``quantity``, ``price``, ``discount`` (percent), ``taxes``."""
    known = {"sku", "description", "quantity", "price", "unit_price", "discount", "taxes", "group"}
    unknown = set(raw) - known
    if unknown:
        names = ", ".join(sorted(unknown))
        raise ValidationError({"line": f"unknown field(s) {names}; known: {', '.join(sorted(known))}"})
    errors: dict[str, str] = {}
    product = None
    sku = clean_text(raw.get("sku"), "sku", 80)
    if sku:
        cache = ctx.cache.setdefault("accounting_products", {})
        product = cache.get(sku) or ctx.first(Product, Product.sku == sku)
        if product is None:
            errors["sku"] = f"no product with SKU {sku!r}"
        cache[sku] = product
    description = clean_text(raw.get("description"), "description", 255) or (product.name if product else None)
    if not description and "sku" not in errors:
        errors["description"] = "give a sku or a description"
    quantity = unit_price = discount = ZERO
    try:
        quantity = _decimal(raw.get("quantity"), "quantity", Decimal(1))
        if quantity < 0 and credit:
            quantity = -quantity
        if quantity < 0:
            errors["quantity"] = f"{quantity} is negative: refunds are credit notes (crm accounting credit-note)"
        elif quantity == 0:
            errors["quantity"] = "must be more than 0"
    except ValidationError as exc:
        errors.update(exc.errors)
    price = raw.get("price", raw.get("unit_price"))
    if price is None and product is not None:
        if product.unit_price is None:
            errors["price"] = f"product {product.sku} has no list price: give the price"
        elif product.currency != currency:
            errors["currency"] = f"product {product.sku} is priced in {product.currency}, the invoice is in {currency}"
        else:
            price = product.unit_price
    try:
        unit_price = _decimal(price, "price")
        if unit_price < 0:
            errors["price"] = "must not be negative"
    except ValidationError as exc:
        errors.setdefault("price", exc.errors["price"])
    try:
        discount = _decimal(raw.get("discount"), "discount", ZERO)
        if not 0 <= discount <= 100:
            errors["discount"] = "a percentage from 0 to 100"
    except ValidationError as exc:
        errors.update(exc.errors)
    taxes: tuple[Tax, ...] = ()
    given = raw.get("taxes")
    try:
        if given is None:
            taxes = config.taxes_for(product.sku if product else None, product.category if product else None)
        else:
            codes = [c.strip() for c in given.split(",")] if isinstance(given, str) else list(given)
            taxes = tuple(config.tax(c) for c in codes if c)
    except ValueError as exc:
        errors["taxes"] = str(exc)
    if errors:
        raise ValidationError(errors)
    group = clean_text(raw.get("group"), "group", 120) or (product.category if product else None) or "general"
    return _Line(product=product, description=str(description), group=group, quantity=quantity,
                 unit_price=unit_price, discount=discount / 100, taxes=taxes)  # fmt: skip


def invoice_record(invoice: Invoice, lines: Sequence[InvoiceLine] | None = None) -> dict[str, Any]:
    """An invoice (or credit note) as plain data, with its lines when given."""
    cur = invoice.currency

    def out(value: Decimal) -> Decimal:
        return round_money(value, cur)

    record: dict[str, Any] = {
        "id": invoice.id, "number": invoice.number, "kind": invoice.kind, "contact_id": invoice.contact_id,
        "rep_id": invoice.rep_id, "currency": invoice.currency, "issued_on": invoice.issued_on,
        "due_on": invoice.due_on, "status": invoice.status, "net_total": out(invoice.net_total),
        "tax_total": out(invoice.tax_total), "total": out(invoice.total), "taxes": invoice.taxes,
        "paid_amount": out(invoice.paid_amount), "credited_amount": out(invoice.credited_amount),
        "open_amount": out(invoice.open_amount), "paid_on": invoice.paid_on, "rounding": invoice.rounding,
        "source": invoice.source, "credits_invoice_id": invoice.credits_invoice_id,
    }  # fmt: skip
    if lines is not None:
        record["lines"] = [
            {"position": li.position, "product_id": li.product_id, "description": li.description,
             "group": li.product_group, "quantity": _plain(li.quantity), "unit_price": out(li.unit_price),
             "discount": _plain(li.discount * 100), "taxes": li.taxes, "net": out(li.net), "tax": out(li.tax),
             "gross": out(li.gross)}
            for li in lines
        ]  # fmt: skip
    return record


def _plain(value: Decimal) -> Decimal:
    """``2.0000`` → ``2``, ``1.5000`` → ``1.5`` (never ``2E+1``)."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def contact_label(contact: Contact) -> str:
    """How a customer is named in the books: name, else email, else ``Contact N``."""
    name = " ".join(p for p in (contact.first_name, contact.last_name) if p)
    return name or contact.email or f"Contact {contact.id}"


def _table(model: Any) -> Any:
    return model.__table__


def _ids_by(ctx: HookContext, key: Any, id_column: Any, values: Sequence[Any]) -> dict[Any, int]:
    """``{key: id}`` of rows just inserted, read back in chunks."""
    found: dict[Any, int] = {}
    for start in range(0, len(values), 500):
        rows = ctx.session.execute(select(key, id_column).where(key.in_(values[start : start + 500])))
        found.update((row[0], row[1]) for row in rows)
    return found


@attrs.define(kw_only=True)
class IssueSpec:
    """One invoice (or credit note of *credits*) to issue, validated."""

    contact: Contact
    lines: Sequence[_Line]
    currency: str
    tax_inclusive: bool
    issued_on: date | None = None
    due_on: date | None = None
    terms_days: int | None = None
    rep_id: int | None = None
    source: str | None = None
    notes: str | None = None
    credits: Invoice | None = None


def issue_in(ctx: HookContext, **spec: Any) -> Invoice:
    """Number, compute, store and post one invoice (or credit note) in the unit of work."""
    [(invoice_id, _number)] = issue_many_in(ctx, [IssueSpec(**spec)])
    invoice = ctx.session.get(Invoice, invoice_id)
    assert invoice is not None
    return invoice


def issue_many_in(ctx: HookContext, specs: Sequence[IssueSpec]) -> list[tuple[int, str]]:
    """Number, compute, store and post invoices in the unit of work; returns their ids and numbers in order.

    All or nothing: any refused invoice refuses the batch (errors name it:
    ``invoice 3 total``). See :func:`write_planned` for how rows are written.
    """
    sources = [s.source for s in specs if s.source]
    if len(set(sources)) != len(sources):
        raise Conflict("the same sale appears twice in the batch")
    for found in invoiced_sources(ctx, sources):
        raise Conflict(f"{found} is already invoiced")
    plans, refused = plan_many(ctx, specs)
    if refused:
        many = len(specs) > 1
        raise ValidationError({f"invoice {index + 1} {field}" if many else field: message
                               for index, errors in refused.items() for field, message in errors.items()})  # fmt: skip
    return write_planned(ctx, [plan for plan in plans if plan is not None])


def invoiced_sources(ctx: HookContext, sources: Sequence[str]) -> dict[str, str]:
    """``{source: number}`` of the given sources already invoiced."""
    found: dict[str, str] = {}
    for chunk in range(0, len(sources), 500):
        query = select(Invoice.source, Invoice.number).where(Invoice.source.in_(sources[chunk : chunk + 500]))
        found.update((source, number) for source, number in ctx.session.execute(query) if source)
    return found


#: An invoice ready to write: what to issue, its computed amounts, its issue date.
Plan = tuple[IssueSpec, InvoiceAmounts, date]


def plan_many(ctx: HookContext, specs: Sequence[IssueSpec]) -> tuple[list[Plan | None], dict[int, dict[str, str]]]:
    """Compute each invoice and check what needs the books; returns the plans (None where refused) and the
    errors of the refused ones by position."""
    config = Config.of(ctx.crm)
    today = local_today(ctx)
    plans: list[Plan | None] = []
    refused: dict[int, dict[str, str]] = {}
    credited: dict[int, Decimal] = {}
    for index, spec in enumerate(specs):
        plans.append(None)
        if not spec.lines:
            refused[index] = {"lines": "an invoice needs at least one line"}
            continue
        if spec.contact.erased_at is not None:
            refused[index] = {"contact": "this contact was erased"}
            continue
        amounts = compute([LineInput(quantity=li.quantity, unit_price=li.unit_price, discount=li.discount,
                                     taxes=li.taxes, tax_inclusive=spec.tax_inclusive) for li in spec.lines],
                          spec.currency, config.rounding)  # fmt: skip
        if spec.credits is not None:
            original = spec.credits
            done = credited.setdefault(original.id, sum_credit_notes(ctx, original.id))
            remaining = original.total - done
            if amounts.total > remaining:
                refused[index] = {"total": f"credit of {amounts.total} {spec.currency} exceeds what is left to "
                                           f"credit on {original.number} ({round_money(remaining, spec.currency)} "
                                           f"{spec.currency})"}  # fmt: skip
                continue
            credited[original.id] = done + amounts.total
        plans[index] = (spec, amounts, spec.issued_on or today)
    return plans, refused


def write_planned(ctx: HookContext, plans: Sequence[Plan]) -> list[tuple[int, str]]:
    """Number, store and post planned invoices; returns their ids and numbers in order.

    Numbers come from one counter move per series and year (gapless: the same
    transaction). Rows are written with one multi-row INSERT per table
    (invoices, lines, entries, postings, audit, outbox), so a batch of
    thousands costs a handful of statements.
    """
    from sqlalchemy import insert

    from crmcore.models import AuditEntry

    if not plans:
        return []
    config = Config.of(ctx.crm)
    numbers: dict[int, str] = {}
    series_ids: dict[tuple[str, int], int] = {}
    groups: dict[tuple[str, int], list[int]] = {}
    for index, (spec, _amounts, issued) in enumerate(plans):
        series = config.credit_note_series if spec.credits is not None else config.invoice_series
        groups.setdefault((series, issued.year), []).append(index)
    for (series, year), members in groups.items():
        for index, number in zip(members, next_numbers(ctx, series, year, len(members)), strict=True):
            numbers[index] = number
        series_ids[(series, year)] = ctx.scalar(select(Series.id).where(Series.code == series, Series.year == year))
    rows: list[dict[str, Any]] = []
    for index, (spec, amounts, issued) in enumerate(plans):
        series = config.credit_note_series if spec.credits is not None else config.invoice_series
        terms = config.payment_terms_days if spec.terms_days is None else spec.terms_days
        rows.append({
            "number": numbers[index], "kind": "credit_note" if spec.credits is not None else "invoice",
            "series_id": series_ids[(series, issued.year)], "contact_id": spec.contact.id, "rep_id": spec.rep_id,
            "currency": spec.currency, "issued_on": issued, "due_on": spec.due_on or issued + timedelta(days=terms),
            "rounding": config.rounding, "net_total": amounts.net_total, "tax_total": amounts.tax_total,
            "total": amounts.total, "taxes": {code: str(v) for code, v in amounts.taxes.items()},
            "paid_amount": ZERO, "credited_amount": ZERO,
            "status": "credited" if spec.credits is not None else "open", "source": spec.source,
            "credits_invoice_id": spec.credits.id if spec.credits is not None else None, "notes": spec.notes,
            "overdue_notified_on": None, "paid_on": None, "created_at": ctx.now,
        })  # fmt: skip
    # Core executemany on the tables: ORM bulk inserts split rows whose NULL columns differ into separate
    # statements, and RETURNING in parameter order runs row by row on SQLite. Ids are read back by key.
    ctx.session.execute(insert(_table(Invoice)), rows)
    by_number = _ids_by(ctx, Invoice.number, Invoice.id, [row["number"] for row in rows])
    ids = [by_number[row["number"]] for row in rows]
    line_rows = []
    entry_rows = []
    entry_legs = []
    receivable = config.account("receivable")
    for invoice_id, row, (spec, amounts, issued) in zip(ids, rows, plans, strict=True):
        revenue: dict[str, Decimal] = {}
        for position, (line, computed) in enumerate(zip(spec.lines, amounts.lines, strict=True), start=1):
            line_rows.append({
                "invoice_id": invoice_id, "position": position, "product_id": line.product.id if line.product else None,
                "description": line.description, "product_group": line.group, "quantity": line.quantity,
                "unit_price": line.unit_price, "discount": line.discount, "tax_inclusive": spec.tax_inclusive,
                "taxes": [{"code": t.code, "rate": str(t.rate), "amount": str(computed.taxes.get(t.code, ZERO))}
                          for t in line.taxes],
                "net": computed.net, "tax": computed.tax, "gross": computed.gross,
            })  # fmt: skip
            account = config.revenue_account(line.group)
            revenue[account] = revenue.get(account, ZERO) + computed.net
        sign = -1 if spec.credits is not None else 1
        legs = [Leg(account, -sign * amount) for account, amount in revenue.items()]
        legs += [Leg(config.tax_account(code), -sign * amount) for code, amount in amounts.taxes.items()]
        if spec.credits is None:
            legs.insert(0, Leg(receivable, amounts.total, spec.contact.id))
            narration = f"Invoice {row['number']}"
        else:
            original = spec.credits
            applied = min(amounts.total, original.open_amount)
            original.credited_amount += applied
            if original.open_amount == 0 and original.status == "open":
                original.status = "paid" if original.paid_amount > 0 else "credited"
            legs += [Leg(receivable, -applied, spec.contact.id),
                     Leg(config.account("customer_credit"), -(amounts.total - applied), spec.contact.id)]  # fmt: skip
            narration = f"Credit note {row['number']} for {original.number}"
        entry_legs.append(checked_legs(legs, spec.currency, narration))
        entry_rows.append({"posted_on": issued, "kind": row["kind"], "payee": contact_label(spec.contact)[:255],
                           "narration": narration, "currency": spec.currency, "invoice_id": invoice_id,
                           "payment_id": None, "reverses_id": None, "created_at": ctx.now})  # fmt: skip
    ctx.session.execute(insert(_table(InvoiceLine)), line_rows)
    ctx.session.execute(insert(_table(Entry)), entry_rows)
    by_invoice = _ids_by(ctx, Entry.invoice_id, Entry.id, ids)
    entry_ids = [by_invoice[invoice_id] for invoice_id in ids]
    ctx.session.execute(insert(_table(Posting)), [
        {"entry_id": entry_id, "account": leg.account, "amount": leg.amount, "contact_id": leg.contact_id}
        for entry_id, legs in zip(entry_ids, entry_legs, strict=True) for leg in legs
    ])  # fmt: skip
    ctx.session.execute(insert(_table(AuditEntry)), [
        {"occurred_at": ctx.now, "actor_id": ctx.actor.user_id, "actor": ctx.actor.label,
         "action": f"accounting.{row['kind']}.issue", "entity": "contact", "entity_id": row["contact_id"],
         "changes": {"number": row["number"], "total": str(row["total"])}}
        for row in rows
    ])  # fmt: skip
    from crmcore_accounting_bridge.connectors import queue_pushes

    for invoice_id, row in zip(ids, rows, strict=True):
        ctx.call("crm_invoice_issued", event=InvoiceIssued(
            invoice_id=invoice_id, number=row["number"], kind=row["kind"], contact_id=row["contact_id"],
            total=row["total"], currency=row["currency"], due_on=row["due_on"], source=row["source"],
            occurred_at=ctx.now,
        ))  # fmt: skip
    queue_pushes(ctx, [document for invoice_id, row in zip(ids, rows, strict=True)
                       for document in (("customer", row["contact_id"]), ("invoice", invoice_id))])  # fmt: skip
    return [(invoice_id, row["number"]) for invoice_id, row in zip(ids, rows, strict=True)]


def sum_credit_notes(ctx: HookContext, invoice_id: int) -> Decimal:
    """The total of the credit notes issued against an invoice."""
    from sqlalchemy import func

    return Decimal(ctx.scalar(select(func.coalesce(func.sum(Invoice.total), 0))
                              .where(Invoice.credits_invoice_id == invoice_id)))  # fmt: skip


def find_invoice(ctx: HookContext, ref: str | int) -> Invoice:
    """An invoice by number (or id); NotFound otherwise."""
    found = None
    if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
        found = ctx.session.get(Invoice, int(ref))
    else:
        found = ctx.first(Invoice, Invoice.number == ref.strip().upper())
    if found is None:
        raise NotFound(f"no invoice {ref!r}")
    return found


def _lines(ctx: HookContext, config: Config, raw_lines: Iterable[Mapping[str, Any]], currency: str,
           *, credit: bool = False) -> list[_Line]:  # fmt: skip
    built, errors = [], {}
    for position, raw in enumerate(raw_lines, start=1):
        try:
            built.append(build_line(ctx, config, raw, currency, credit=credit))
        except ValidationError as exc:
            errors.update({f"line {position} {k}": v for k, v in exc.errors.items()})
    if errors:
        raise ValidationError(errors)
    return built


@attrs.frozen(kw_only=True)
class Posted:
    """What :meth:`InvoiceService.post_many` did with one item."""

    #: ``posted``, ``exists`` (its source was invoiced before) or ``rejected``.
    action: str
    number: str | None = None
    invoice_id: int | None = None
    source: str | None = None
    #: Why a rejected item was refused, by field.
    errors: dict[str, str] = attrs.field(factory=dict)


_ITEM_FIELDS = frozenset(
    {"contact", "lines", "currency", "tax_inclusive", "issued_on", "due_on", "terms_days", "notes"}
)


def _item_specs(
    ctx: HookContext, invoices: Sequence[Mapping[str, Any]], *, keyed: bool
) -> list[IssueSpec | ValidationError]:
    """Validate batch items (contacts read with one query per 500); each becomes a spec or its errors."""
    config = Config.of(ctx.crm)
    known = _ITEM_FIELDS | {"source"} if keyed else _ITEM_FIELDS
    default_currency = ctx.crm.settings.currency
    ids = [int(i["contact"]) for i in invoices if str(i.get("contact", "")).strip().isdigit()]
    contacts: dict[int, Contact] = {}
    for chunk in range(0, len(ids), 500):
        contacts.update((c.id, c) for c in ctx.session.scalars(
            select(Contact).where(Contact.id.in_(ids[chunk:chunk + 500]))))  # fmt: skip
    specs: list[IssueSpec | ValidationError] = []
    for item in invoices:
        try:
            unknown = set(item) - known
            if unknown:
                raise ValidationError({"invoice": f"unknown field(s) {', '.join(sorted(unknown))}"})
            source = clean_text(item.get("source"), "source", 60, required=True) if keyed else None
            ref = item.get("contact") or ""
            contact = contacts.get(int(ref)) if str(ref).strip().isdigit() else None
            contact = contact or get_contact(ctx, ref)
            code = currency_code(item.get("currency"), default_currency)
            inclusive = item.get("tax_inclusive")
            specs.append(IssueSpec(
                contact=contact, lines=_lines(ctx, config, item.get("lines") or [], code), currency=code,
                tax_inclusive=config.prices_include_tax if inclusive is None else bool(inclusive),
                issued_on=parse_date(item.get("issued_on"), "issued_on"),
                due_on=parse_date(item.get("due_on"), "due_on"), terms_days=item.get("terms_days"),
                rep_id=ctx.actor.user_id or contact.owner_id, source=source,
                notes=clean_text(item.get("notes"), "notes", 4000),
            ))  # fmt: skip
        except (ValidationError, NotFound) as exc:
            specs.append(exc if isinstance(exc, ValidationError) else ValidationError({"contact": str(exc)}))
    return specs


class InvoiceService(Service):
    """Issue invoices (by hand, from sales), credit notes; read them."""

    def create(
        self,
        contact: ContactRef,
        *,
        lines: Sequence[Mapping[str, Any]],
        currency: str | None = None,
        tax_inclusive: bool | None = None,
        issued_on: date | str | None = None,
        due_on: date | str | None = None,
        terms_days: int | None = None,
        rep: int | str | None = None,
        notes: str | None = None,
        actor: Any = None,
    ) -> Invoice:
        """Issue an invoice: each line a mapping of ``sku``/``description``, ``quantity``, ``price``,
        ``discount`` (percent) and ``taxes`` (codes; default from the product's SKU or category)."""
        config = Config.of(self.crm)
        code = currency_code(currency, self.crm.settings.currency)
        issued = parse_date(issued_on, "issued_on")
        due = parse_date(due_on, "due_on")
        if issued and due and due < issued:
            raise ValidationError({"due_on": "is before the issue date"})
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "accounting.invoice")
            target = get_contact(ctx, contact)
            rep_user = get_user(ctx, rep, "rep")
            built = _lines(ctx, config, lines, code)
            return issue_in(ctx, contact=target, lines=built, currency=code,
                            tax_inclusive=config.prices_include_tax if tax_inclusive is None else tax_inclusive,
                            issued_on=issued, due_on=due, terms_days=terms_days,
                            rep_id=rep_user.id if rep_user else (ctx.actor.user_id or target.owner_id),
                            notes=clean_text(notes, "notes", 4000))  # fmt: skip

    def create_many(self, invoices: Sequence[Mapping[str, Any]], *, actor: Any = None) -> list[str]:
        """Issue many invoices in one transaction (a month's sales, an import); returns their numbers.

        Each item takes the arguments of :meth:`create` (``contact``, ``lines``,
        ``currency``, ``tax_inclusive``, ``issued_on``, ``due_on``, ``terms_days``,
        ``notes``). All or nothing: errors name the item (``invoice 3 line 2 sku``).
        For a batch where each invoice stands alone, see :meth:`post_many`.
        """
        with gc_paused(), self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "accounting.invoice")
            specs = _item_specs(ctx, invoices, keyed=False)
            errors = {f"invoice {index} {field}": message for index, spec in enumerate(specs, start=1)
                      if isinstance(spec, ValidationError) for field, message in spec.errors.items()}  # fmt: skip
            if errors:
                raise ValidationError(errors)
            return [number for _id, number in issue_many_in(ctx, [s for s in specs if isinstance(s, IssueSpec)])]

    def post_many(self, invoices: Sequence[Mapping[str, Any]], *, actor: Any = None) -> list[Posted]:
        """Issue and post a batch of invoices in one transaction, each standing alone; one result per item.

        Each item takes the arguments of :meth:`create_many` plus ``source``,
        the sale it comes from (``shop-order:1042``, up to 60 characters): an
        item whose source was invoiced before is not issued again (``exists``,
        with that invoice's number), so posting the same batch twice, or again
        after a crash, creates nothing new. A refused item is ``rejected`` with
        its errors and writes nothing; the others are ``posted``, numbered
        consecutively in item order. A hook that raises rolls the batch back.
        """
        results: list[Posted | None] = [None] * len(invoices)
        with gc_paused(), self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "accounting.invoice")
            specs = _item_specs(ctx, invoices, keyed=True)
            sources = [s.source for s in specs if isinstance(s, IssueSpec) and s.source]
            done = invoiced_sources(ctx, sources)
            chosen: list[tuple[int, IssueSpec]] = []
            batch_sources: set[str] = set()
            for index, spec in enumerate(specs):
                if isinstance(spec, ValidationError):
                    results[index] = Posted(action="rejected", errors=spec.errors)
                elif spec.source in done:
                    results[index] = Posted(action="exists", number=done[spec.source], source=spec.source)
                elif spec.source in batch_sources:
                    results[index] = Posted(action="rejected", source=spec.source,
                                            errors={"source": f"{spec.source} appears twice in the batch"})  # fmt: skip
                else:
                    batch_sources.add(str(spec.source))
                    chosen.append((index, spec))
            plans, refused = plan_many(ctx, [spec for _index, spec in chosen])
            for position, errors in refused.items():
                index, spec = chosen[position]
                results[index] = Posted(action="rejected", source=spec.source, errors=errors)
            kept = [(index, plan) for (index, _spec), plan in zip(chosen, plans, strict=True) if plan is not None]
            written = write_planned(ctx, [plan for _index, plan in kept])
            for (index, plan), (invoice_id, number) in zip(kept, written, strict=True):
                results[index] = Posted(action="posted", number=number, invoice_id=invoice_id, source=plan[0].source)
        return [result for result in results if result is not None]

    def from_opportunity(self, opportunity_id: int, *, actor: Any = None) -> Invoice:
        """Invoice a won opportunity (one line: its name and amount)."""
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "accounting.invoice")
            return invoice_opportunity(ctx, opportunity_id)

    def from_purchase(self, purchase_id: int, *, actor: Any = None) -> Invoice:
        """Invoice a recorded purchase, line by line."""
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "accounting.invoice")
            return invoice_purchase(ctx, purchase_id)

    def credit_note(
        self, invoice: str | int, *, reason: str, lines: Sequence[Mapping[str, Any]] | None = None, actor: Any = None
    ) -> Invoice:
        """Refund (part of) an invoice: a credit note with its own number, posted in reverse.

        Without *lines*, credits every line of the invoice (only possible while
        nothing was credited yet). What the invoice no longer owes after
        payments becomes the customer's credit.
        """
        config = Config.of(self.crm)
        reason_text = clean_text(reason, "reason", 4000, required=True)
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "accounting.invoice")
            original = find_invoice(ctx, invoice)
            if original.kind != "invoice":
                raise ValidationError({"invoice": f"{original.number} is a credit note, not an invoice"})
            line_rows = list(ctx.session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == original.id)
                                                 .order_by(InvoiceLine.position)))  # fmt: skip
            if lines is None:
                if sum_credit_notes(ctx, original.id):
                    raise ValidationError({"lines": f"{original.number} is partly credited: say which lines to credit"})
                lines = [{"description": li.description, "quantity": li.quantity, "price": li.unit_price,
                          "discount": li.discount * 100, "taxes": [t["code"] for t in li.taxes],
                          "group": li.product_group, **({"sku": _sku(ctx, li.product_id)} if li.product_id else {})}
                         for li in line_rows]  # fmt: skip
            built = _lines(ctx, config, lines, original.currency, credit=True)
            inclusive = bool(line_rows) and line_rows[0].tax_inclusive
            contact = get_contact(ctx, original.contact_id)
            return issue_in(ctx, contact=contact, lines=built, currency=original.currency, tax_inclusive=inclusive,
                            terms_days=0, rep_id=original.rep_id, notes=reason_text, credits=original)  # fmt: skip

    def get(self, ref: str | int, *, actor: Any = None) -> dict[str, Any]:
        """An invoice with its lines."""
        with self.crm.transaction(actor, readonly=True) as ctx:
            permissions.require(ctx, "accounting.view")
            invoice = find_invoice(ctx, ref)
            lines = ctx.session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id)
                                        .order_by(InvoiceLine.position))  # fmt: skip
            return invoice_record(invoice, list(lines))

    def list(self, *, contact: ContactRef | None = None, status: str | None = None, kind: str | None = None,
             limit: int = 100, actor: Any = None) -> list[dict[str, Any]]:  # fmt: skip
        """Invoices and credit notes, newest first."""
        query = select(Invoice).order_by(Invoice.id.desc()).limit(limit)
        with self.crm.transaction(actor, readonly=True) as ctx:
            permissions.require(ctx, "accounting.view")
            if contact is not None:
                query = query.where(Invoice.contact_id == get_contact(ctx, contact).id)
            if status == "overdue":
                query = query.where(Invoice.status == "open", Invoice.due_on < local_today(ctx))
            elif status:
                query = query.where(Invoice.status == status)
            if kind:
                query = query.where(Invoice.kind == kind)
            return [invoice_record(i) for i in ctx.session.scalars(query)]


def _sku(ctx: HookContext, product_id: int) -> str:
    product = ctx.session.get(Product, product_id)
    assert product is not None
    return product.sku


def invoice_opportunity(ctx: HookContext, opportunity_id: int) -> Invoice:
    """Invoice a won opportunity in the unit of work (refused if open, lost or already invoiced)."""
    config = Config.of(ctx.crm)
    opportunity = ctx.session.get(Opportunity, opportunity_id)
    if opportunity is None:
        raise NotFound(f"no opportunity {opportunity_id}")
    if opportunity.status != "won":
        raise ValidationError({"opportunity": f"opportunity {opportunity_id} is {opportunity.status}, not won"})
    if opportunity.contact_id is None:
        raise ValidationError({"opportunity": f"opportunity {opportunity_id} has no contact to invoice"})
    contact = get_contact(ctx, opportunity.contact_id)
    line = build_line(ctx, config, {"description": opportunity.name, "price": opportunity.amount, "group": "general"},
                      opportunity.currency, credit=False)  # fmt: skip
    return issue_in(ctx, contact=contact, lines=[line], currency=opportunity.currency,
                    tax_inclusive=config.prices_include_tax, rep_id=opportunity.owner_id,
                    source=f"opportunity:{opportunity.id}")  # fmt: skip


def invoice_purchase(ctx: HookContext, purchase_id: int) -> Invoice:
    """Invoice a recorded purchase in the unit of work, one line per purchase line."""
    config = Config.of(ctx.crm)
    purchase = ctx.session.get(Purchase, purchase_id)
    if purchase is None:
        raise NotFound(f"no purchase {purchase_id}")
    rows = ctx.session.execute(
        select(PurchaseLine, Product.sku).join(Product, Product.id == PurchaseLine.product_id)
        .where(PurchaseLine.purchase_id == purchase.id).order_by(PurchaseLine.id)
    ).all()  # fmt: skip
    raw = [{"sku": sku, "quantity": line.quantity, "price": line.unit_price} for line, sku in rows]
    built = _lines(ctx, config, raw, purchase.currency)
    contact = get_contact(ctx, purchase.contact_id)
    return issue_in(ctx, contact=contact, lines=built, currency=purchase.currency,
                    tax_inclusive=config.prices_include_tax,
                    rep_id=purchase.rep_id, source=f"purchase:{purchase.id}",
                    notes=purchase.special_instructions)  # fmt: skip


def already_invoiced_sale(ctx: HookContext, *, opportunity_id: int | None) -> bool:
    """Whether a won opportunity was invoiced, itself or through one of its purchases."""
    if opportunity_id is None:
        return False
    if ctx.first(Invoice, Invoice.source == f"opportunity:{opportunity_id}") is not None:
        return True
    purchase_ids = ctx.session.scalars(select(Purchase.id).where(Purchase.opportunity_id == opportunity_id)).all()
    sources = [f"purchase:{pid}" for pid in purchase_ids]
    return bool(sources) and ctx.first(Invoice, Invoice.source.in_(sources)) is not None

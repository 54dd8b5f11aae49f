"""Reports on the books: invoiced revenue, receivables ageing, days to pay.

Each is one SQL statement the database aggregates, registered with the core's
report framework (``crm report run accounting.revenue --by month``). Money
columns count one currency (``--param currency=EUR``; default: the CRM's).
Invoice dates are calendar dates already (the CRM's zone), so ranges filter
``issued_on`` / ``paid_on`` directly.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, String, and_, case, cast, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from crmcore.i18n import N_
from crmcore.models import Contact, Product, User
from crmcore.reports import Chart, Column, Report, ReportQuery, count, money_sum, ratio
from crmcore.reports.common import CURRENCY, currency, with_periods
from crmcore_accounting_bridge.models import Invoice, InvoiceLine


class date_days(FunctionElement[Decimal]):
    """Whole days from the date ``earlier`` to the date ``later``: ``date_days(later, earlier)``."""

    type = Numeric(12, 2)
    inherit_cache = True
    name = "date_days"


@compiles(date_days)
def _days_sqlite(element: date_days, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(julianday({later}) - julianday({earlier}))"


@compiles(date_days, "postgresql")
def _days_pg(element: date_days, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"({later} - {earlier})"


@compiles(date_days, "mysql")
@compiles(date_days, "mariadb")
def _days_mysql(element: date_days, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"DATEDIFF({later}, {earlier})"


def _customer() -> Any:
    """A customer's email, else ``contact <id>``."""
    return func.coalesce(Contact.email, literal("contact ", String(20)).concat(cast(Contact.id, String(20))))


def _signed(value: Any) -> Any:
    return case((Invoice.kind == "credit_note", -value), else_=value)


def build_revenue(query: ReportQuery) -> Any:
    """Net invoiced revenue (credit notes subtract) per product, group, rep, customer or period."""
    keys: dict[str, Any] = {
        "product": func.coalesce(Product.sku, InvoiceLine.description),
        "group": InvoiceLine.product_group,
        "rep": User.name,
        "customer": _customer(),
    }
    key = query.date_period(Invoice.issued_on) if query.is_period else keys[query.by]
    facts = (
        select(key.label("key"), Invoice.id.label("invoice_id"), Invoice.kind.label("kind"),
               _signed(InvoiceLine.quantity).label("quantity"), _signed(InvoiceLine.net).label("revenue"))
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .outerjoin(Product, Product.id == InvoiceLine.product_id)
        .outerjoin(User, User.id == Invoice.rep_id)
        .join(Contact, Contact.id == Invoice.contact_id)
        .where(query.in_dates(Invoice.issued_on), Invoice.currency == currency(query),
               query.in_segment(Invoice.contact_id))
        .subquery()
    )  # fmt: skip
    return (
        select(facts.c.key,
               func.count(func.distinct(case((facts.c.kind == "invoice", facts.c.invoice_id)))).label("invoices"),
               func.sum(facts.c.quantity).label("quantity"), func.sum(facts.c.revenue).label("revenue"))
        .group_by(facts.c.key)
        .order_by(facts.c.key if query.is_period else func.sum(facts.c.revenue).desc())
    )  # fmt: skip


REVENUE = Report(
    name="accounting.revenue",
    title=N_("Invoiced revenue"),
    description=N_("Net revenue invoiced (before tax; credit notes subtract), per product, product group, "
                   "sales rep, customer or period."),
    build=build_revenue,
    columns=(count("invoices", N_("Invoices")), Column(name="quantity", label=N_("Quantity"), type="number", empty=0),
             money_sum("revenue", N_("Revenue (net)"))),
    groupings=with_periods(N_("product"), N_("group"), N_("rep"), N_("customer")),
    default_by="month",
    params=(CURRENCY,),
    chart=Chart(kind="bar", y=("revenue",)),
    dates="invoices and credit notes by issue date",
    main=True,
)  # fmt: skip

BUCKETS = ("current", "d1_30", "d31_60", "d61_90", "d90_plus")


def build_ageing(query: ReportQuery) -> Any:
    """Open receivables as of the range's end (else today), in due-date buckets."""
    from crmcore_accounting_bridge.models import Payment

    as_of = query.as_of
    paid = (select(func.coalesce(func.sum(Payment.applied), 0)).where(Payment.invoice_id == Invoice.id,
                                                                      Payment.received_on <= as_of)
            .correlate(Invoice).scalar_subquery())  # fmt: skip
    credit_note = Invoice.__table__.alias("credit_note")
    credited = (select(func.coalesce(func.sum(credit_note.c.total), 0))
                .where(credit_note.c.credits_invoice_id == Invoice.id, credit_note.c.issued_on <= as_of)
                .correlate(Invoice).scalar_subquery())  # fmt: skip
    owed = Invoice.total - paid - credited
    keys: dict[str, Any] = {
        "customer": _customer(),
        "rep": User.name,
        "total": literal("all"),
    }
    facts = (
        select(keys[query.by].label("key"), Invoice.due_on.label("due_on"),
               case((owed > 0, owed), else_=0).label("owed"))
        .join(Contact, Contact.id == Invoice.contact_id)
        .outerjoin(User, User.id == Invoice.rep_id)
        .where(Invoice.kind == "invoice", Invoice.issued_on <= as_of, Invoice.currency == currency(query),
               query.in_segment(Invoice.contact_id))
        .subquery()
    )  # fmt: skip
    limits = [as_of - timedelta(days=d) for d in (0, 30, 60, 90)]

    def bucket(condition: Any) -> Any:
        return func.coalesce(func.sum(case((and_(facts.c.owed > 0, condition), facts.c.owed), else_=0)), 0)

    return (
        select(facts.c.key,
               func.sum(case((facts.c.owed > 0, 1), else_=0)).label("invoices"),
               bucket(facts.c.due_on >= limits[0]).label("current"),
               bucket(and_(facts.c.due_on < limits[0], facts.c.due_on >= limits[1])).label("d1_30"),
               bucket(and_(facts.c.due_on < limits[1], facts.c.due_on >= limits[2])).label("d31_60"),
               bucket(and_(facts.c.due_on < limits[2], facts.c.due_on >= limits[3])).label("d61_90"),
               bucket(facts.c.due_on < limits[3]).label("d90_plus"),
               bucket(literal(True)).label("open"))
        .group_by(facts.c.key)
        .having(func.sum(facts.c.owed) > 0)
        .order_by(func.sum(facts.c.owed).desc())
    )  # fmt: skip


AGEING = Report(
    name="accounting.ageing",
    title=N_("Receivables ageing"),
    description=N_("What customers owe as of the range's end (default today): open invoice amounts by days "
                   "past due (not yet due, 1-30, 31-60, 61-90, over 90), per customer, rep or in total."),
    build=build_ageing,
    columns=(count("invoices", N_("Open invoices")), money_sum("current", N_("Not yet due")),
             money_sum("d1_30", N_("1-30 days")), money_sum("d31_60", N_("31-60 days")),
             money_sum("d61_90", N_("61-90 days")),
             money_sum("d90_plus", N_("Over 90 days")), money_sum("open", N_("Open"))),
    groupings=(N_("customer"), N_("rep"), N_("total")),
    terms=("total",),
    default_by="customer",
    params=(CURRENCY,),
    chart=Chart(kind="bar", y=("current", "d1_30", "d31_60", "d61_90", "d90_plus")),
    dates="the range's end is the day ages are measured on; invoices issued up to it, payments received up to it",
    main=True,
)  # fmt: skip


def build_days_to_pay(query: ReportQuery) -> Any:
    """Invoices paid in the range: days from issue to payment, and the share paid by the due date."""
    keys: dict[str, Any] = {
        "customer": _customer(),
        "rep": User.name,
    }
    key = query.date_period(Invoice.paid_on) if query.is_period else keys[query.by]
    days = date_days(Invoice.paid_on, Invoice.issued_on)
    on_time = func.sum(case((Invoice.paid_on <= Invoice.due_on, 1), else_=0))
    return (
        select(key.label("key"), func.count().label("invoices"), func.avg(days).label("average_days"),
               func.min(days).label("fastest"), func.max(days).label("slowest"),
               ratio(on_time, func.count()).label("on_time"), func.sum(Invoice.total).label("paid"))
        .join(Contact, Contact.id == Invoice.contact_id)
        .outerjoin(User, User.id == Invoice.rep_id)
        .where(Invoice.kind == "invoice", Invoice.status == "paid", Invoice.paid_on.is_not(None),
               query.in_dates(Invoice.paid_on), Invoice.currency == currency(query),
               query.in_segment(Invoice.contact_id))
        .group_by(key)
        .order_by(key)
    )  # fmt: skip


DAYS_TO_PAY = Report(
    name="accounting.days_to_pay",
    title=N_("Days to pay"),
    description=N_("Invoices fully paid in the range: average, fastest and slowest days from issue to "
                   "payment, the share paid by the due date, and the amount, per customer, rep or period."),
    build=build_days_to_pay,
    columns=(count("invoices", N_("Paid invoices")),
             Column(name="average_days", label=N_("Average days"), type="days"),
             Column(name="fastest", label=N_("Fastest"), type="days"),
             Column(name="slowest", label=N_("Slowest"), type="days"),
             Column(name="on_time", label=N_("Paid on time"), type="percent"), money_sum("paid", N_("Paid"))),
    groupings=with_periods(N_("customer"), N_("rep")),
    default_by="month",
    params=(CURRENCY,),
    chart=Chart(kind="bar", y=("average_days",)),
    dates="invoices by the day they were fully paid",
)  # fmt: skip


def registered_reports() -> list[Report]:
    """The reports the plugin registers."""
    return [REVENUE, AGEING, DAYS_TO_PAY]


def revenue_events() -> Any:
    """Invoiced revenue for attribution: each invoice's net total when issued, credit notes negative."""
    return select(
        Invoice.contact_id.label("contact_id"),
        Invoice.created_at.label("occurred_at"),
        _signed(Invoice.net_total).label("amount"),
        Invoice.currency.label("currency"),
    )

"""Invoice arithmetic: Decimal only, one documented rounding rule.

The rule (the guide repeats it with examples):

- Amounts are rounded to the currency's minor unit (2 places; 0 for JPY, KRW, …)
  with ``ROUND_HALF_UP`` (0.005 → 0.01), the commercial rule most tax offices expect.
- A line's amount is ``quantity × unit price × (1 − discount)``, rounded: that is the
  line's **net** (prices exclusive of tax) or **gross** (prices inclusive of tax).
- An invoice is priced either exclusive or inclusive of tax (never mixed). Several
  taxes on one line are each computed on the line's net (never tax on tax).
  Inclusive prices: ``net = gross / (1 + sum of the rates)``.
- ``rounding = "line"``: each tax of each line is rounded on the line; the
  invoice's totals are the sums of the rounded lines.
- ``rounding = "invoice"``: each tax rate's amount is summed unrounded over the
  lines and rounded once on the invoice. With inclusive prices each line's net
  is its gross less its unrounded taxes, rounded; the cent that rounding leaves
  over goes to the line with the largest net, so lines always add up to the totals.

Whatever the rule, ``total = net_total + tax_total`` exactly, and the journal
entry (receivable = revenue + taxes) balances to the cent.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

import attrs

ZERO = Decimal(0)
_NO_MINOR_UNIT = {"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF", "PYG", "RWF"}


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of *currency*: ``Decimal("0.01")``, or ``Decimal("1")`` for yen and the like."""
    return Decimal(1) if currency.upper() in _NO_MINOR_UNIT else Decimal("0.01")


def round_money(value: Decimal, currency: str) -> Decimal:
    """Round *value* half up to the minor unit of *currency*."""
    return value.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


@attrs.frozen(kw_only=True)
class Tax:
    """A tax rate by code: ``Tax(code="VAT19", rate=Decimal("0.19"))``."""

    code: str
    rate: Decimal


@attrs.frozen(kw_only=True)
class LineInput:
    """What a line is made of, before arithmetic."""

    quantity: Decimal
    unit_price: Decimal
    discount: Decimal = ZERO
    taxes: tuple[Tax, ...] = ()
    tax_inclusive: bool = False


@attrs.frozen(kw_only=True)
class LineAmounts:
    """A computed line: net, tax per code (rounded under line rounding), gross."""

    net: Decimal
    taxes: dict[str, Decimal]
    tax: Decimal
    gross: Decimal


@attrs.frozen(kw_only=True)
class InvoiceAmounts:
    """The computed invoice: its lines and totals, tax per code as posted."""

    lines: tuple[LineAmounts, ...]
    net_total: Decimal
    taxes: dict[str, Decimal]
    tax_total: Decimal
    total: Decimal


def compute(lines: Sequence[LineInput], currency: str, rounding: str) -> InvoiceAmounts:
    """Compute lines and totals of an invoice under the rounding rule (``line`` or ``invoice``).

    All lines must be priced the same way (inclusive or exclusive of tax).
    """
    if rounding not in ("line", "invoice"):
        raise ValueError(f"rounding must be 'line' or 'invoice', not {rounding!r}")
    if len({line.tax_inclusive for line in lines}) > 1:
        raise ValueError("an invoice's prices are either all inclusive or all exclusive of tax")
    inclusive = bool(lines) and lines[0].tax_inclusive
    amounts = [round_money(li.quantity * li.unit_price * (1 - li.discount), currency) for li in lines]
    exact: list[dict[str, Decimal]] = []
    for line, amount in zip(lines, amounts, strict=True):
        base = amount / (1 + sum((t.rate for t in line.taxes), ZERO)) if inclusive else amount
        per_code: dict[str, Decimal] = {}
        for tax in line.taxes:
            per_code[tax.code] = per_code.get(tax.code, ZERO) + base * tax.rate
        exact.append(per_code)
    if rounding == "line":
        line_taxes = [{code: round_money(v, currency) for code, v in taxes.items()} for taxes in exact]
    else:
        line_taxes = [{code: v.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP) for code, v in taxes.items()}
                      for taxes in exact]  # fmt: skip
    totals: dict[str, Decimal] = {}
    for taxes in line_taxes if rounding == "line" else exact:
        for code, value in taxes.items():
            totals[code] = totals.get(code, ZERO) + value
    invoice_taxes = {code: round_money(v, currency) for code, v in totals.items()}
    tax_total = sum(invoice_taxes.values(), ZERO)
    computed: list[LineAmounts] = []
    if not inclusive:
        for amount, taxes in zip(amounts, line_taxes, strict=True):
            line_tax = round_money(sum(taxes.values(), ZERO), currency)
            computed.append(LineAmounts(net=amount, taxes=taxes, tax=line_tax, gross=amount + line_tax))
        net_total = sum(amounts, ZERO)
    else:
        total = sum(amounts, ZERO)
        net_total = total - tax_total
        nets = [round_money(amount - sum(taxes.values(), ZERO), currency)
                for amount, taxes in zip(amounts, exact, strict=True)]  # fmt: skip
        residue = net_total - sum(nets, ZERO)
        if residue and nets:  # the cent rounding leaves over goes to the largest line
            largest = max(range(len(nets)), key=lambda i: nets[i])
            nets[largest] += residue
        for amount, net, taxes in zip(amounts, nets, line_taxes, strict=True):
            computed.append(LineAmounts(net=net, taxes=taxes, tax=amount - net, gross=amount))
    return InvoiceAmounts(lines=tuple(computed), net_total=net_total, taxes=invoice_taxes,
                          tax_total=tax_total, total=net_total + tax_total)  # fmt: skip

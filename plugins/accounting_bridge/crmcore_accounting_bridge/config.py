"""The plugin's settings and the chart of accounts they describe.

Settings live under ``[plugins.accounting_bridge]`` in ``crm.toml`` (or
``CRMCORE_ACCOUNTING_BRIDGE__<NAME>``). Account names follow Beancount's rules (which
ledger-cli also reads): a root (Assets, Liabilities, Equity, Income, Expenses)
and capitalized components, so every export loads without renaming anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import attrs

from crmcore.errors import ConfigError
from crmcore.registry import SettingSpec
from crmcore_accounting_bridge.calc import Tax

if TYPE_CHECKING:
    from crmcore.crm import CRM

PLUGIN = "accounting_bridge"
ACCOUNT = re.compile(r"^(Assets|Liabilities|Equity|Income|Expenses)(:[A-Z0-9][A-Za-z0-9-]*)+$")
AUTO_INVOICE = ("off", "won", "purchase", "both")

DEFAULT_ACCOUNTS: dict[str, str] = {
    "receivable": "Assets:Receivable",
    "bank": "Assets:Bank",
    "revenue": "Income:Sales",
    "tax": "Liabilities:Tax:{code}",
    "customer_credit": "Liabilities:CustomerCredit",
}


def _choice(*allowed: str) -> Any:
    def convert(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return text

    return convert


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise ValueError(f"{value!r} is not true or false")
    return text in ("1", "true", "yes", "on")


def _mapping(value: Any) -> dict[str, Any]:
    """A TOML table, or ``"a=b,c=d"`` from an environment variable."""
    if isinstance(value, Mapping):
        return {str(k): v if isinstance(v, list | tuple) else str(v) for k, v in value.items()}
    text = str(value).strip()
    if not text:
        return {}
    pairs = [part.split("=", 1) for part in text.split(",")]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"{value!r} is not NAME=VALUE,NAME=VALUE")
    return {k.strip(): v.strip() for k, v in pairs}


def _codes(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


def _rates(value: Any) -> dict[str, Decimal]:
    rates = {}
    for code, raw in _mapping(value).items():
        try:
            rate = Decimal(str(raw))
        except InvalidOperation:
            raise ValueError(f"tax rate {code}: {raw!r} is not a number") from None
        if not rate.is_finite() or rate < 0 or rate >= 1:
            raise ValueError(f"tax rate {code}: {raw} must be a fraction from 0 to below 1 (0.19 is 19 %)")
        rates[code] = rate
    return rates


def setting_specs() -> list[SettingSpec]:
    """Every setting of the plugin."""
    return [
        SettingSpec(plugin=PLUGIN, name="auto_invoice", default="off", convert=_choice(*AUTO_INVOICE),
                    help="Invoice automatically: off (on command), won (won opportunities), purchase (recorded "
                         "purchases) or both."),
        SettingSpec(plugin=PLUGIN, name="rounding", default="line", convert=_choice("line", "invoice"),
                    help="Round taxes per line or once per invoice (see the guide)."),
        SettingSpec(plugin=PLUGIN, name="prices_include_tax", default=False, convert=_bool,
                    help="Whether prices taken from purchases, opportunities and products include tax."),
        SettingSpec(plugin=PLUGIN, name="payment_terms_days", default=30, convert=int,
                    help="Days from issue to due date."),
        SettingSpec(plugin=PLUGIN, name="tax_rates", default={}, convert=_rates,
                    help="Tax rates by code, as fractions: {VAT19 = \"0.19\", VAT7 = \"0.07\"}."),
        SettingSpec(plugin=PLUGIN, name="default_taxes", default=(), convert=_codes,
                    help="Tax codes applied to a line when neither its SKU nor its category is in product_taxes."),
        SettingSpec(plugin=PLUGIN, name="product_taxes", default={}, convert=_mapping,
                    help="Tax codes by SKU or product category: {BOOK = [\"VAT7\"], services = [\"VAT19\"]}."),
        SettingSpec(plugin=PLUGIN, name="accounts", default={}, convert=_mapping,
                    help="The chart of accounts: receivable, bank, revenue, tax (with {code}), customer_credit."),
        SettingSpec(plugin=PLUGIN, name="revenue_accounts", default={}, convert=_mapping,
                    help="Revenue account by product group (category); others go to revenue:<Group>."),
        SettingSpec(plugin=PLUGIN, name="invoice_series", default="INV", help="Series code of invoices."),
        SettingSpec(plugin=PLUGIN, name="credit_note_series", default="CN", help="Series code of credit notes."),
        SettingSpec(plugin=PLUGIN, name="connectors", default=(), convert=_codes,
                    help="Connectors that receive customers, invoices and payments (file_drop, or a plugin's)."),
        SettingSpec(plugin=PLUGIN, name="file_drop_dir", default="accounting-drop",
                    help="Folder the file_drop connector writes Beancount and ledger include files to."),
        SettingSpec(plugin=PLUGIN, name="overdue_ticket", default=False, convert=_bool,
                    help="Open a ticket (ticketing plugin) for each invoice that becomes overdue."),
    ]  # fmt: skip


def group_component(group: str) -> str:
    """``"home office"`` → ``"HomeOffice"``: a product group as an account name component."""
    words = re.findall(r"[A-Za-z0-9]+", group)
    text = "".join(w[:1].upper() + w[1:] for w in words) or "General"
    return text if text[0].isalpha() else f"G{text}"


@attrs.frozen(kw_only=True)
class Config:
    """The settings one operation reads, converted and checked once."""

    auto_invoice: str
    rounding: str
    prices_include_tax: bool
    payment_terms_days: int
    tax_rates: dict[str, Decimal]
    default_taxes: tuple[str, ...]
    product_taxes: dict[str, Any]
    accounts: dict[str, str]
    revenue_accounts: dict[str, str]
    invoice_series: str
    credit_note_series: str
    connectors: tuple[str, ...]
    file_drop_dir: str
    overdue_ticket: bool
    _accounts_by_group: dict[str, str] = attrs.field(factory=dict, init=False, eq=False, repr=False)
    _taxes_by_product: dict[tuple[str | None, str | None], tuple[Tax, ...]] = attrs.field(
        factory=dict, init=False, eq=False, repr=False
    )

    @classmethod
    def of(cls, crm: CRM) -> Config:
        """Read and check the settings of *crm* (cached on the CRM)."""
        cached: Config | None = getattr(crm, "_accounting_bridge_config", None)
        if cached is not None:
            return cached
        values = {f.name: crm.plugin_setting(PLUGIN, f.name) for f in attrs.fields(cls) if f.init}
        values["accounts"] = {**DEFAULT_ACCOUNTS, **values["accounts"]}
        config = cls(**values)
        config.check()
        crm._accounting_bridge_config = config  # type: ignore[attr-defined]
        return config

    def check(self) -> None:
        """Refuse account names the exporters could not write and unknown tax codes."""
        unknown = set(self.accounts) - set(DEFAULT_ACCOUNTS)
        if unknown:
            raise ConfigError(f"accounting_bridge.accounts: unknown role(s) {', '.join(sorted(unknown))}; "
                              f"roles: {', '.join(DEFAULT_ACCOUNTS)}")  # fmt: skip
        names = [*(v.replace("{code}", "X") for v in self.accounts.values()), *self.revenue_accounts.values()]
        for name in names:
            if not ACCOUNT.match(name):
                raise ConfigError(
                    f"accounting_bridge: account {name!r} is not a valid account name "
                    "(Assets|Liabilities|Equity|Income|Expenses, then :Capitalized components)"
                )
        codes = set(self.default_taxes)
        for value in self.product_taxes.values():
            codes.update(_codes(value))
        missing = codes - set(self.tax_rates)
        if missing:
            raise ConfigError(f"accounting_bridge: tax code(s) {', '.join(sorted(missing))} have no rate in tax_rates")
        for code in self.tax_rates:
            if not re.fullmatch(r"[A-Za-z0-9-]+", code):
                raise ConfigError(f"accounting_bridge: tax code {code!r}: letters, digits and - only")

    def account(self, role: str) -> str:
        """The account of a role: ``receivable``, ``bank``, ``customer_credit``."""
        return self.accounts[role]

    def tax_account(self, code: str) -> str:
        """The tax payable account of a tax code."""
        return self.accounts["tax"].replace("{code}", code[:1].upper() + code[1:])

    def revenue_account(self, group: str) -> str:
        """The revenue account of a product group."""
        found = self._accounts_by_group.get(group)
        if found is None:
            found = self.revenue_accounts.get(group) or f"{self.accounts['revenue']}:{group_component(group)}"
            self._accounts_by_group[group] = found
        return found

    def taxes_for(self, sku: str | None, category: str | None) -> tuple[Tax, ...]:
        """The taxes of a product: by SKU, else by category, else the defaults."""
        found = self._taxes_by_product.get((sku, category))
        if found is None:
            codes = self.default_taxes
            for key in (sku, category):
                if key is not None and key in self.product_taxes:
                    codes = _codes(self.product_taxes[key])
                    break
            found = self._taxes_by_product[(sku, category)] = tuple(Tax(code=c, rate=self.tax_rates[c]) for c in codes)
        return found

    def tax(self, code: str) -> Tax:
        """A tax by code; ValueError when it has no rate."""
        if code not in self.tax_rates:
            raise ValueError(f"unknown tax code {code!r}; known: {', '.join(self.tax_rates) or 'none'}")
        return Tax(code=code, rate=self.tax_rates[code])

"""Exporters: Beancount, ledger-cli and CSV journals, incremental and idempotent.

Every exported transaction carries its journal entry id (Beancount metadata
``crm-entry: 17``, a ledger comment ``; crm-entry: 17``, the CSV's ``entry_id``
column). An export reads the ids the target file already holds and writes only
the entries it lacks, into a temporary file next to the target that then
replaces it in one atomic rename. So running an export twice, or again after a
crash at any point (before the rename: the old file is intact; after it: the
new entries are found in the file), never duplicates an entry. The run is then
recorded in ``accounting_bridge_export_state`` (entries held, last entry id).
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select

from crmcore.errors import ValidationError
from crmcore.services.base import Service
from crmcore_accounting_bridge.calc import minor_unit
from crmcore_accounting_bridge.models import Entry, ExportState, Invoice, Posting

if TYPE_CHECKING:
    from crmcore.context import HookContext

FORMATS = ("beancount", "ledger", "csv")
CSV_COLUMNS = ["entry_id", "date", "kind", "document", "payee", "narration", "account", "debit", "credit", "amount",
               "currency"]  # fmt: skip
_MARKERS = {
    "beancount": re.compile(r"^\s+crm-entry:\s*(\d+)\s*$", re.MULTILINE),
    "ledger": re.compile(r"^\s+; crm-entry:\s*(\d+)\s*$", re.MULTILINE),
    "csv": re.compile(r"^(\d+),", re.MULTILINE),
}
_OPEN = re.compile(r"^\d{4}-\d\d-\d\d open (\S+)", re.MULTILINE)
_LEDGER_ACCOUNT = re.compile(r"^account (\S+)", re.MULTILINE)
_LEDGER_COMMODITY = re.compile(r"^commodity (\S+)", re.MULTILINE)
#: The day accounts are opened in Beancount files: before any entry.
OPEN_DATE = "1970-01-01"


@attrs.frozen(kw_only=True)
class ExportedEntry:
    """A journal entry ready to render: its postings as ``(account, amount)``."""

    id: int
    posted_on: date
    kind: str
    document: str
    payee: str
    narration: str
    currency: str
    postings: tuple[tuple[str, Decimal], ...]


def _amount(value: Decimal, currency: str) -> str:
    return str(value.quantize(minor_unit(currency)))


def _quote(text: str) -> str:
    return '"' + " ".join(text.split()).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_beancount(entry: ExportedEntry) -> str:
    """One Beancount transaction (flag ``*``), with its entry id as metadata."""
    lines = [f"{entry.posted_on.isoformat()} * {_quote(entry.payee)} {_quote(entry.narration)}",
             f"  crm-entry: {entry.id}", f"  crm-kind: {_quote(entry.kind)}"]  # fmt: skip
    if entry.document:
        lines.append(f"  crm-document: {_quote(entry.document)}")
    width = max(len(a) for a, _ in entry.postings) + 2
    lines += [f"  {account:<{width}}{_amount(amount, entry.currency):>14} {entry.currency}"
              for account, amount in entry.postings]  # fmt: skip
    return "\n".join(lines) + "\n\n"


def render_ledger(entry: ExportedEntry) -> str:
    """One ledger-cli transaction, cleared (``*``), with its entry id in a comment."""
    payee = " ".join(f"{entry.payee} | {entry.narration}".split()).replace(";", ",")
    lines = [f"{entry.posted_on.isoformat()} * {payee}", f"    ; crm-entry: {entry.id}"]
    if entry.document:
        lines.append(f"    ; crm-document: {entry.document}")
    width = max(len(a) for a, _ in entry.postings) + 2
    lines += [f"    {account:<{width}}{_amount(amount, entry.currency):>14} {entry.currency}"
              for account, amount in entry.postings]  # fmt: skip
    return "\n".join(lines) + "\n\n"


def render_csv(entry: ExportedEntry) -> str:
    """One CSV row per posting."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for account, amount in entry.postings:
        text = _amount(amount, entry.currency)
        writer.writerow([entry.id, entry.posted_on.isoformat(), entry.kind, entry.document, entry.payee,
                         entry.narration, account, text if amount > 0 else "",
                         _amount(-amount, entry.currency) if amount < 0 else "", text, entry.currency])  # fmt: skip
    return out.getvalue()


RENDER = {"beancount": render_beancount, "ledger": render_ledger, "csv": render_csv}


def header(fmt: str) -> str:
    """What a new file starts with."""
    if fmt == "csv":
        return ",".join(CSV_COLUMNS) + "\n"
    text = "; Journal exported by crmcore's accounting bridge. Entries are appended, never rewritten.\n"
    if fmt == "ledger":  # declared, so that ledger --strict (and --pedantic) accept the file
        text += "tag crm-entry\ntag crm-document\n"
    return text + "\n"


def open_accounts(fmt: str, accounts: Sequence[str], commodities: Sequence[str] = ()) -> str:
    """Declarations of accounts (and, for ledger, currencies) the file does not hold yet."""
    if not accounts and not commodities:
        return ""
    if fmt == "beancount":
        return "".join(f"{OPEN_DATE} open {a}\n" for a in accounts) + "\n"
    if fmt == "ledger":
        declared = [f"commodity {c}\n" for c in commodities] + [f"account {a}\n" for a in accounts]
        return "".join(declared) + "\n"
    return ""


def held(fmt: str, text: str) -> tuple[set[int], set[str]]:
    """The entry ids and declared accounts a file already holds."""
    ids = {int(m) for m in _MARKERS[fmt].findall(text)}
    if fmt == "beancount":
        return ids, set(_OPEN.findall(text))
    return ids, set(_LEDGER_ACCOUNT.findall(text)) | {f"commodity:{c}" for c in _LEDGER_COMMODITY.findall(text)}


def load_entries(
    ctx: HookContext,
    *,
    start: date | None = None,
    end: date | None = None,
    ids: Sequence[int] | None = None,
    skip: set[int] | None = None,
    from_id: int | None = None,
) -> Iterator[ExportedEntry]:
    """Journal entries in id order (dates in range, or the given ids), with their postings."""
    query = (
        select(Entry.id, Entry.posted_on, Entry.kind, Invoice.number, Entry.payee, Entry.narration, Entry.currency,
               Posting.account, Posting.amount)
        .join(Posting, Posting.entry_id == Entry.id)
        .outerjoin(Invoice, Invoice.id == Entry.invoice_id)
        .order_by(Entry.id, Posting.id)
    )  # fmt: skip
    if start:
        query = query.where(Entry.posted_on >= start)
    if end:
        query = query.where(Entry.posted_on <= end)
    if ids is not None:
        query = query.where(Entry.id.in_(list(ids)))
    if from_id is not None:
        query = query.where(Entry.id >= from_id)
    skip = skip or set()
    current: list[Any] | None = None
    for row in ctx.session.execute(query.execution_options(yield_per=2000)):
        if row[0] in skip:
            continue
        if current is None or current[0] != row[0]:
            if current is not None:
                yield _exported(current)
            current = [row[0], row[1], row[2], row[3], row[4], row[5], row[6], []]
        current[7].append((row[7], Decimal(row[8])))
    if current is not None:
        yield _exported(current)


def _exported(values: list[Any]) -> ExportedEntry:
    return ExportedEntry(id=values[0], posted_on=values[1], kind=values[2], document=values[3] or "",
                         payee=values[4] or "", narration=values[5], currency=values[6],
                         postings=tuple(values[7]))  # fmt: skip


def write_atomically(path: Path, chunks: Iterator[str] | Sequence[str]) -> int:
    """Write *chunks* to a temporary file beside *path*, fsync it, rename it over *path*; returns bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    size = 0
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            for chunk in chunks:
                size += out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path.stat().st_size


@attrs.frozen(kw_only=True)
class ExportResult:
    """What one export run did."""

    format: str
    path: str
    written: int
    total: int
    bytes: int


class Exporter(Service):
    """``crm accounting export``: write the journal to a Beancount, ledger or CSV file."""

    def export(self, fmt: str, output: str | Path, *, start: date | str | None = None,
               end: date | str | None = None) -> ExportResult:  # fmt: skip
        """Append the entries posted from *start* to *end* (inclusive) that *output* lacks."""
        from crmcore.validation import parse_date

        errors = {}
        if fmt not in FORMATS:
            errors["format"] = f"{fmt!r} is not one of {', '.join(FORMATS)}"
        first = last = None
        try:
            first = parse_date(start, "from")
            last = parse_date(end, "to")
        except ValidationError as exc:
            errors.update(exc.errors)
        if first and last and last < first:
            errors["to"] = "is before from"
        if errors:
            raise ValidationError(errors)
        path = Path(output).resolve()
        existing = path.read_text(encoding="utf-8") if path.exists() else ""
        if existing and fmt == "csv" and not existing.startswith(",".join(CSV_COLUMNS)):
            raise ValidationError({"output": f"{path} is not a journal CSV written by this exporter"})
        ids, declared = held(fmt, existing)
        with self.crm.transaction(readonly=True) as ctx:
            # Only ids first (cheap): rows are loaded from the first entry the file lacks onwards.
            in_range = select(Entry.id)
            if first:
                in_range = in_range.where(Entry.posted_on >= first)
            if last:
                in_range = in_range.where(Entry.posted_on <= last)
            lacking = [i for i in ctx.session.scalars(in_range) if i not in ids]
            new = list(load_entries(ctx, start=first, end=last, skip=ids, from_id=min(lacking))) if lacking else []
        accounts = sorted({a for e in new for a, _ in e.postings} - declared)
        commodities = sorted({e.currency for e in new} - {d[10:] for d in declared if d.startswith("commodity:")})
        render = RENDER[fmt]
        chunks: list[str] = [existing or header(fmt)]
        if not existing.endswith("\n") and existing:
            chunks.append("\n")
        chunks.append(open_accounts(fmt, accounts, commodities if fmt == "ledger" else ()))
        chunks.extend(render(e) for e in new)
        size = write_atomically(path, chunks) if new or not existing else len(existing.encode())
        total = len(ids) + len(new)
        last_id = max([*ids, *(e.id for e in new)], default=0)
        self._record(fmt, str(path), total, last_id)
        return ExportResult(format=fmt, path=str(path), written=len(new), total=total, bytes=size)

    def _record(self, fmt: str, target: str, total: int, last_id: int) -> None:
        with self.crm.transaction() as ctx:
            state = ctx.first(ExportState, ExportState.format == fmt, ExportState.target == target[:500])
            if state is None:
                state = ExportState(format=fmt, target=target[:500])
                ctx.session.add(state)
            state.entries, state.last_entry_id, state.exported_at = total, last_id, ctx.now

    def states(self) -> list[dict[str, Any]]:
        """Every export target and what it holds."""
        with self.crm.transaction(readonly=True) as ctx:
            return [{"format": s.format, "target": s.target, "entries": s.entries, "last_entry_id": s.last_entry_id,
                     "exported_at": s.exported_at}
                    for s in ctx.session.scalars(select(ExportState).order_by(ExportState.id))]  # fmt: skip

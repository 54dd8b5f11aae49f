"""CSV import of contacts: streamed, batched, idempotent, with per-row errors.

``crm.contacts.import_csv("people.csv", mapping={"E-Mail": "email"})`` reads
the file once, in batches of rows, each batch one transaction with bulk
inserts, so memory stays flat on a million rows. Every row is validated; a
bad row goes to the error report with its line number and reason and the
good rows around it are kept. Rows are matched to existing contacts on the
normalized email, then the E.164 phone (as ``crm_duplicate_find`` does), so
importing the same file twice creates nobody twice. A row repeating an
earlier row's email or phone in the same file is reported, not imported.

The file may start with a UTF-8 byte order mark, use ``,``, ``;``, tab or
``|`` as delimiter (sniffed from the header) and carry newlines inside
quoted values. A file that is not UTF-8 is refused before anything is
written, naming the first bad line; give ``encoding="cp1252"`` (or
``latin-1``) for such files.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs
from sqlalchemy import bindparam, func, insert, literal, null, select, update

from crmcore.errors import ValidationError
from crmcore.events import LeadCaptured
from crmcore.models import (
    Contact,
    ContactTag,
    LifecycleChange,
    Organization,
    Stage,
    Tag,
    User,
)
from crmcore.validation import _CONTROL, clean_text, country_code, fast_normalize_email, normalize_phone, parse_date

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM
    from crmcore.services.fields import FieldDef

#: Contact fields a column can be mapped to (plus ``custom.<name>`` for declared custom fields).
IMPORT_FIELDS = (
    "email", "phone", "first_name", "last_name", "title", "organization", "owner", "stage",
    "source", "country", "region", "city", "language", "timezone", "birth_date", "tags",
    "do_not_contact", "do_not_track",
)  # fmt: skip
#: Header spellings understood without a ``--map``.
ALIASES = {
    "e_mail": "email", "email_address": "email", "mail": "email", "firstname": "first_name",
    "given_name": "first_name", "lastname": "last_name", "surname": "last_name",
    "family_name": "last_name", "company": "organization", "phone_number": "phone",
    "telephone": "phone", "mobile": "phone", "tag": "tags", "job_title": "title",
}  # fmt: skip
TEXT_LIMITS = {"first_name": 120, "last_name": 120, "title": 120, "source": 120, "region": 120, "city": 120,
               "language": 16}  # fmt: skip
DELIMITERS = (",", ";", "\t", "|")
UPDATABLE = ("phone", "phone_normalized", "first_name", "last_name", "title", "organization_id", "owner_id",
             "source", "country", "region", "city", "language", "timezone", "birth_date", "do_not_contact",
             "do_not_track")  # fmt: skip
_TRUE = {"1", "true", "yes", "y", "on", "x"}
_FALSE = {"0", "false", "no", "n", "off", ""}


@attrs.define
class ImportError_:
    """One refused row: its line in the file and why."""

    line: int
    reason: str


@attrs.define
class ImportResult:
    """What an import did (or, in a dry run, would do)."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    dry_run: bool = False
    encoding: str = "utf-8"
    delimiter: str = ","
    mapping: dict[str, str] = attrs.field(factory=dict)
    ignored_columns: list[str] = attrs.field(factory=list)
    #: The first 100 errors (all of them are in the error file).
    errors: list[ImportError_] = attrs.field(factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        data = attrs.asdict(self)
        data["errors"] = [{"line": e.line, "reason": e.reason} for e in self.errors]
        return data


@attrs.define
class _Rows:
    """Validated rows waiting for their batch's transaction, in parallel lists.

    Ints, tuples of strings and flat dicts in a list are skipped by the
    garbage collector; a ``(line, cells, values)`` tuple per row is not, and
    thousands of them per batch triggered full collections (a quarter of the
    import's time).
    """

    lines: list[int] = attrs.field(factory=list)
    cells: list[tuple[str, ...]] = attrs.field(factory=list)
    values: list[dict[str, Any]] = attrs.field(factory=list)

    def append(self, line: int, cells: tuple[str, ...], values: dict[str, Any]) -> None:
        self.lines.append(line)
        self.cells.append(cells)
        self.values.append(values)

    def __len__(self) -> int:
        return len(self.lines)

    def __iter__(self) -> Iterator[tuple[int, tuple[str, ...], dict[str, Any]]]:
        return zip(self.lines, self.cells, self.values, strict=True)


class _RowError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read (for the progress bar)."""

    def __init__(self, raw: IO[bytes], progress: Callable[[int], None] | None) -> None:
        self.raw, self.progress, self.done = raw, progress, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.done += len(data)
        if self.progress is not None and data:
            self.progress(len(data))
        return len(data)


def check_encoding(path: Path, encoding: str | None) -> str:
    """The encoding to read *path* with; a non-UTF-8 file without *encoding* is refused here.

    The whole file is checked before any row is imported, so a bad byte on
    line 900,000 never leaves a half-imported file behind.
    """
    if encoding:
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            raise ValidationError({"encoding": f"unknown encoding {encoding!r}"}) from None
        return "utf-8-sig" if name in ("utf-8", "utf-8-sig") else name
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 0
    with path.open("rb") as raw:
        while chunk := raw.read(1 << 20):
            try:
                decoder.decode(chunk, final=False)
            except UnicodeDecodeError as exc:
                bad = chunk[exc.start : exc.start + 1]
                line = lines + chunk.count(b"\n", 0, exc.start) + 1
                message = (
                    f"line {line} is not UTF-8 (byte 0x{bad.hex()} at offset {offset + exc.start}): the file "
                    "looks like Latin-1 or Windows-1252; run again with --encoding cp1252 (or its real encoding)"
                )
                raise ValidationError({"file": message}) from None
            offset += len(chunk)
            lines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ValidationError({"file": "the file ends in the middle of a UTF-8 character"}) from None
    return "utf-8-sig"


def sniff_delimiter(path: Path, encoding: str) -> str:
    """The delimiter of the header line: the most frequent of ``,`` ``;`` tab ``|`` outside quotes."""
    with path.open("r", encoding=encoding, newline="", errors="replace") as text:
        header = text.readline()
    unquoted = re.sub(r'"[^"]*"', "", header)
    counts = {d: unquoted.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def resolve_mapping(
    header: Sequence[str], explicit: Mapping[str, str], custom_fields: Mapping[str, FieldDef]
) -> tuple[dict[str, str], list[str]]:
    """Column → field mapping: explicit ``--map`` entries, then headers named like a field."""
    valid = [*IMPORT_FIELDS, *(f"custom.{name}" for name in sorted(custom_fields))]
    errors: dict[str, str] = {}
    if len(set(header)) != len(header):
        twice = sorted({h for h in header if header.count(h) > 1})
        raise ValidationError({"header": f"column(s) named twice: {', '.join(twice)}"})
    mapping: dict[str, str] = {}
    for column, field in explicit.items():
        if column not in header:
            errors[f"map.{column}"] = f"no column {column!r} in the file; columns: {', '.join(header)}"
        elif field and field not in valid:
            errors[f"map.{column}"] = f"unknown field {field!r}; fields: {', '.join(valid)}"
        elif field:
            mapping[column] = field
    ignored: list[str] = []
    for column in header:
        if column in explicit:
            continue
        key = _key(column)
        guess = key if key in IMPORT_FIELDS else ALIASES.get(key)
        if guess is None and key.removeprefix("custom.") in custom_fields:
            guess = f"custom.{key.removeprefix('custom.')}"
        if guess is None:
            ignored.append(column)
        else:
            mapping[column] = guess
    seen: dict[str, str] = {}
    for column, field in mapping.items():
        if field in seen:
            errors[f"map.{column}"] = f"{field} is already mapped from column {seen[field]!r}"
        seen[field] = column
    if not errors and not {"email", "phone"} & set(mapping.values()):
        errors["map"] = (f"map a column to email or phone (how rows are matched on a second import); "
                         f"columns: {', '.join(header)}")  # fmt: skip
    missing = [name for name, spec in custom_fields.items() if spec.required and f"custom.{name}" not in seen]
    if not errors and missing:
        errors["map"] = f"required custom field(s) not in the file: {', '.join(sorted(missing))}"
    if errors:
        raise ValidationError(errors)
    return mapping, ignored


class ContactImporter:
    """One import run over one file; see :meth:`ContactService.import_csv`."""

    def __init__(
        self,
        crm: CRM,
        path: str | Path,
        *,
        mapping: Mapping[str, str] | None = None,
        dry_run: bool = False,
        errors_to: str | Path | IO[str] | None = None,
        encoding: str | None = None,
        delimiter: str | None = None,
        existing: str = "update",
        source: str | None = None,
        batch_size: int = 2000,
        progress: Callable[[int], None] | None = None,
        actor: Any = None,
    ) -> None:
        self.crm = crm
        self.path = Path(path)
        if not self.path.is_file():
            raise ValidationError({"file": f"no file {str(path)!r}"})
        if existing not in ("update", "skip"):
            raise ValidationError({"existing": "give update or skip"})
        if delimiter is not None and len(delimiter) != 1:
            raise ValidationError({"delimiter": "give one character"})
        if batch_size < 1:
            raise ValidationError({"batch_size": "must be at least 1"})
        self.explicit = dict(mapping or {})
        self.dry_run, self.existing, self.batch_size = dry_run, existing, batch_size
        self.errors_to, self.progress, self.actor = errors_to, progress, actor
        self.encoding = check_encoding(self.path, encoding)
        self.delimiter = delimiter or sniff_delimiter(self.path, self.encoding)
        self.source = clean_text(source, "source", 120) or "import"
        self.result = ImportResult(dry_run=dry_run, encoding=self.encoding.replace("-sig", ""),
                                   delimiter=self.delimiter)  # fmt: skip
        self.seen: dict[int, int] = {}  # hash of a normalized email or phone -> line where it first appeared
        self.organizations: dict[str, int] = {}
        self._error_writer: Any = None
        self._error_file: IO[str] | None = None

    # -- running ------------------------------------------------------------------

    def run(self) -> ImportResult:
        """Import the file; returns the counts and the first errors."""
        with self.path.open("rb") as raw:
            counting = _CountingReader(raw, self.progress)
            text = io.TextIOWrapper(io.BufferedReader(counting, 1 << 16), encoding=self.encoding, newline="")
            owned = isinstance(self.errors_to, str | Path)
            if isinstance(self.errors_to, str | Path):
                # Written from the start, so an old error file never survives a clean run.
                self._error_file = Path(self.errors_to).open("w", encoding="utf-8", newline="")  # noqa: SIM115
            elif self.errors_to is not None:
                self._error_file = self.errors_to
            if self._error_file is not None:
                self._error_writer = csv.writer(self._error_file)
            try:
                self._run(csv.reader(text, delimiter=self.delimiter))
            except csv.Error as exc:
                raise ValidationError({"file": f"not a readable CSV file: {exc}"}) from None
            finally:
                if owned and self._error_file is not None:
                    self._error_file.close()
        return self.result

    def _run(self, reader: Iterator[list[str]]) -> None:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise ValidationError({"file": "the file is empty (no header line)"})
        self.header = [cell.strip() for cell in header]
        with self.crm.transaction(readonly=True) as ctx:
            self.custom_fields = self._custom_fields(ctx)
            self.users = self._users(ctx)
        self.mapping, self.result.ignored_columns = resolve_mapping(self.header, self.explicit, self.custom_fields)
        self.result.mapping = dict(self.mapping)
        if self._error_writer is not None:
            self._error_writer.writerow(["line", "error", *self.header])
        self.plan = [(index, field, TEXT_LIMITS.get(field, 0)) for index, column in enumerate(self.header)
                     if (field := self.mapping.get(column)) is not None]  # fmt: skip
        # Columns no mapped field fills are shared by the batch (or left NULL): only these vary row by row.
        mapped = {column for field in self.mapping.values() for column in _columns_of(field)}
        self.filled = tuple(column for column in _INSERT_COLUMNS if column in mapped or column == "owner_id")
        self.updatable = tuple(column for column in UPDATABLE if column in self.filled)
        self._defaults = {"stage": Stage.LEAD.value, "source": self.source, "custom": {}, "do_not_contact": False,
                          "do_not_track": False}  # fmt: skip
        batch = _Rows()
        clean, check_unique, batch_size, result = self._clean, self._check_unique, self.batch_size, self.result
        previous_line = reader.line_num  # type: ignore[attr-defined]
        for cells in reader:
            line = previous_line + 1
            previous_line = reader.line_num  # type: ignore[attr-defined]
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            result.rows += 1
            try:
                values = clean(cells)
                check_unique(values, line)
            except _RowError as exc:
                self._error(line, exc.reason, cells)
                continue
            batch.append(line, tuple(cells), values)
            if len(batch.lines) >= batch_size:
                self._flush(batch)
                batch = _Rows()
        if batch:
            self._flush(batch)

    # -- one row ----------------------------------------------------------------------

    def _clean(self, cells: list[str]) -> dict[str, Any]:
        if len(cells) != len(self.header):
            raise _RowError(f"has {len(cells)} values, the header has {len(self.header)} columns")
        values: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        problems: list[str] = []
        for index, field, limit in self.plan:
            raw = cells[index].strip()
            # Plain text, as clean_text takes it (its errors come below); printable ASCII has no control character.
            if limit and (not raw or (len(raw) <= limit and ((raw.isascii() and raw.isprintable())
                                                             or not _CONTROL.search(raw)))):  # fmt: skip
                values[field] = raw or None
                continue
            try:
                if limit:
                    values[field] = clean_text(raw, field, limit)
                elif field.startswith("custom."):
                    self._custom_value(field[7:], raw, custom)
                else:
                    self._field(field, raw, values)
            except ValidationError as exc:
                problems.extend(f"{k}: {v}" for k, v in exc.errors.items())
        if problems:
            raise _RowError("; ".join(problems))
        if not values.get("email_normalized") and not values.get("phone_normalized"):
            raise _RowError("no email and no phone: a row needs one of them")
        if custom:
            values["custom"] = custom
        return values

    def _field(self, field: str, raw: str, values: dict[str, Any]) -> None:
        if field == "email":
            values["email"], values["email_normalized"] = fast_normalize_email(raw) if raw else (None, None)
        elif field == "phone":
            values["phone"] = clean_text(raw, "phone", 64)
            region = self.crm.settings.phone_region
            values["phone_normalized"] = normalize_phone(raw, region) if raw else None
        elif field in TEXT_LIMITS:
            values[field] = clean_text(raw, field, TEXT_LIMITS[field])
        elif field == "country":
            values["country"] = country_code(raw)
        elif field == "birth_date":
            values["birth_date"] = parse_date(raw, "birth_date") if raw else None
        elif field == "timezone":
            if raw and raw not in _zones():
                raise ValidationError({"timezone": f"unknown time zone {raw!r}"})
            values["timezone"] = raw or None
        elif field == "stage":
            if raw and raw.lower() not in {s.value for s in Stage}:
                raise ValidationError({"stage": f"unknown stage {raw!r}; stages: {', '.join(s.value for s in Stage)}"})
            values["stage"] = raw.lower() or None
        elif field in ("do_not_contact", "do_not_track"):
            lowered = raw.lower()
            if lowered not in _TRUE | _FALSE:
                raise ValidationError({field: f"{raw!r} is not yes or no"})
            values[field] = lowered in _TRUE
        elif field == "owner":
            if raw:
                owner = self.users.get(raw.lower())
                if owner is None:
                    raise ValidationError({"owner": f"no user {raw!r}"})
                values["owner_id"] = owner
        elif field == "organization":
            values["organization"] = clean_text(raw, "organization", 255)
        elif field == "tags" and raw:
            parts = (clean_text(part, "tags", 120) for part in re.split(r"[,;|]", raw))
            values["tags"] = tuple(sorted({tag for tag in parts if tag}))

    def _custom_value(self, name: str, raw: str, custom: dict[str, Any]) -> None:
        from crmcore.services.fields import convert_custom

        spec = self.custom_fields[name]
        if not raw:
            if spec.required:
                raise ValidationError({f"custom.{name}": "is required"})
            return
        try:
            custom[name] = convert_custom(spec, raw)
        except ValidationError as exc:
            raise ValidationError({f"custom.{name}": str(exc)}) from None

    def _check_unique(self, values: dict[str, Any], line: int) -> None:
        """Refuse a row repeating an earlier row's email or phone (kept as hashes: about 110 bytes a key)."""
        email, phone = values.get("email_normalized"), values.get("phone_normalized")
        email_key = hash(email) if email else None  # an email has an @, a phone (E.164) never
        phone_key = hash(phone) if phone else None
        seen = self.seen
        if email_key is not None and (first := seen.get(email_key)) is not None:
            raise _RowError(f"duplicate of line {first} (same email)")
        if phone_key is not None and (first := seen.get(phone_key)) is not None:
            raise _RowError(f"duplicate of line {first} (same phone)")
        if email_key is not None:
            seen[email_key] = line
        if phone_key is not None:
            seen[phone_key] = line

    def _error(self, line: int, reason: str, cells: Sequence[str]) -> None:
        self.result.failed += 1
        if len(self.result.errors) < 100:
            self.result.errors.append(ImportError_(line, reason))
        if self._error_writer is not None:
            self._error_writer.writerow([line, reason, *cells])

    # -- one batch --------------------------------------------------------------------

    def _flush(self, batch: _Rows) -> None:
        with self.crm.transaction(self.actor) as ctx:
            plugin_hooks = _non_core_impls(ctx, ("crm_duplicate_find", "crm_owner_assign", "crm_lead_before_capture"))
            matches = self._match(ctx, batch, per_row="crm_duplicate_find" in plugin_hooks)
            if "organization_id" in self.filled:
                self._organizations(ctx, batch)
            changes: list[dict[str, Any]] = []
            tag_rows: list[tuple[int, Sequence[str]]] = []
            fresh = batch  # a batch of new people only (the usual first run) goes on as it is
            if matches:
                fresh = _Rows()
                for line, cells, values in batch:
                    existing = matches.get(line)
                    if existing is None:
                        fresh.append(line, cells, values)
                    elif self.existing == "skip":
                        self.result.unchanged += 1
                    else:
                        change = self._changes(existing, values)
                        if change:
                            change["updated_at"] = ctx.now
                            changes.append(change)
                            self.result.updated += 1
                        else:
                            self.result.unchanged += 1
                        if values.get("tags"):
                            tag_rows.append((existing.id, values["tags"]))
            through_hooks = bool(plugin_hooks & {"crm_owner_assign", "crm_lead_before_capture"})
            columns = _INSERT_COLUMNS if through_hooks else self.filled
            shared = {**{key: value for key, value in self._defaults.items() if key not in columns},
                      **self._constants(ctx)}  # fmt: skip
            rows = self._new_rows(ctx, fresh, columns, through_hooks)
            if self.dry_run:
                self.result.created += len(rows)
                return
            if changes:
                ctx.session.execute(update(Contact), changes)
            created = self._insert(ctx, columns, [row for _, row, _ in rows], shared) if rows else []
            if "tags" in self.mapping.values():
                for (_, _, tags), contact_id in zip(rows, created, strict=True):
                    if tags:
                        tag_rows.append((contact_id, tags))
            self.result.created += len(created)
            self._tags(ctx, tag_rows)
            ctx.audit("contact.import", "contact", None, {
                "file": self.path.name, "lines": [batch.lines[0], batch.lines[-1]], "created": len(created),
                "updated": len(changes),
            })  # fmt: skip
            if ctx.crm.plugins.pm.hook.crm_lead_captured.get_hookimpls():
                call, now = ctx.call, ctx.now
                source = columns.index("source") if "source" in columns else None
                for contact_id, (_, row, _) in zip(created, rows, strict=True):
                    event = LeadCaptured(contact_id=contact_id, touchpoint_id=None, occurred_at=now,
                                         source=shared["source"] if source is None else row[source])  # fmt: skip
                    call("crm_lead_captured", event=event)

    def _match(self, ctx: HookContext, batch: _Rows, *, per_row: bool) -> dict[int, Any]:
        """Existing contacts by line: the duplicate hook per row when a plugin answers it, else one query."""
        if per_row:
            found: dict[int, Any] = {}
            for line, _, values in batch:
                candidate = Contact(email_normalized=values.get("email_normalized"),
                                    phone_normalized=values.get("phone_normalized"))  # fmt: skip
                match = ctx.call("crm_duplicate_find", contact=candidate)
                if match is not None:
                    found[line] = match
            return found
        emails = [v["email_normalized"] for v in batch.values if v.get("email_normalized")]
        phones = [v["phone_normalized"] for v in batch.values if v.get("phone_normalized")]
        ids = sorted(
            existing_ids(ctx, Contact.__table__, {"email_normalized": emails, "phone_normalized": phones},
                         "erased_at IS NULL AND merged_into_id IS NULL")
        )  # fmt: skip
        if not ids:
            return {}
        by_email: dict[str, Any] = {}
        by_phone: dict[str, Any] = {}
        columns = [getattr(Contact, name) for name in ("id", "email", "email_normalized", "custom", *UPDATABLE)]
        for start in range(0, len(ids), _IN_CHUNK):
            query = select(*columns).where(Contact.id.in_(ids[start : start + _IN_CHUNK])).order_by(Contact.id)
            for contact in ctx.session.execute(query):
                if contact.email_normalized:
                    by_email.setdefault(contact.email_normalized, contact)
                if contact.phone_normalized:
                    by_phone.setdefault(contact.phone_normalized, contact)
        found = {}
        for line, _, values in batch:
            match = by_email.get(values.get("email_normalized") or "") or by_phone.get(
                values.get("phone_normalized") or ""
            )
            if match is not None:
                found[line] = match
        return found

    def _changes(self, contact: Any, values: dict[str, Any]) -> dict[str, Any]:
        change: dict[str, Any] = {}
        for key in self.updatable:
            value = values.get(key)
            if value is not None and getattr(contact, key) != value:
                change[key] = value
        if values.get("email") and contact.email_normalized is None:
            change["email"], change["email_normalized"] = values["email"], values["email_normalized"]
        if "custom" in values:
            custom = {**(contact.custom or {}), **values["custom"]}
            if custom != (contact.custom or {}):
                change["custom"] = custom
        if change:
            change["id"] = contact.id
        return change

    def _new_rows(
        self,
        ctx: HookContext,
        fresh: _Rows,
        columns: Sequence[str],
        through_hooks: bool,
    ) -> list[tuple[int, tuple[Any, ...], tuple[str, ...] | None]]:
        """The new contacts' values of *columns*, in that order (the rest are shared, see :meth:`_flush`)."""
        from crmcore.builtin import active_reps, least_loaded_rep

        rows = []
        defaults = [(index, self._defaults[column]) for index, column in enumerate(columns) if column in self._defaults]
        owner = columns.index("owner_id")
        assign = least_loaded_rep if active_reps(ctx) else None  # no reps: nobody to assign
        for line, cells, values in fresh:
            row = list(map(values.get, columns))
            for index, default in defaults:
                if row[index] is None:
                    row[index] = default
            if through_hooks:
                contact = Contact(**dict(zip(columns, row, strict=True)), **self._constants(ctx))
                try:
                    if contact.owner_id is None:
                        contact.owner_id = ctx.call("crm_owner_assign", contact=contact)
                    ctx.call("crm_lead_before_capture", contact=contact)
                except ValidationError as exc:
                    reason = "; ".join(f"{k}: {v}" for k, v in exc.errors.items()) or str(exc)
                    self._error(line, f"refused by plugin {exc.plugin}: {reason}", cells)
                    continue
                row = [getattr(contact, column) for column in columns]
            elif row[owner] is None and assign is not None:
                row[owner] = assign(ctx)
            rows.append((line, tuple(row), values.get("tags")))
        return rows

    @staticmethod
    def _constants(ctx: HookContext) -> dict[str, Any]:
        now = ctx.now
        return {"score": 0, "created_at": now, "updated_at": now, "stage_changed_at": now, "last_activity_at": now}

    def _insert(
        self, ctx: HookContext, columns: Sequence[str], rows: list[tuple[Any, ...]], shared: dict[str, Any]
    ) -> list[int]:
        """Bulk insert the new contacts (one executemany) and their first lifecycle rows; their ids in row order.

        ``INSERT ... RETURNING`` in parameter order would make SQLite insert row
        by row. There the unit of work holds the write lock, so every row gets
        the largest id so far plus one: if the last id is the old largest plus
        the number of rows, the ids are the run in between, and the lifecycle
        rows are copied from them in one ``INSERT ... SELECT``. Elsewhere (or
        if that check fails) the ids are read back by their unique keys.
        """
        table = Contact.__table__
        connection = ctx.session.connection()
        largest = None
        if connection.dialect.name == "sqlite":
            largest = connection.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
        bulk_insert(ctx, table, columns, rows, shared)
        moves = LifecycleChange.__table__
        if largest is not None and connection.exec_driver_sql("SELECT last_insert_rowid()").scalar_one() == (
            largest + len(rows)
        ):
            first, last = largest + 1, largest + len(rows)
            new = select(
                table.c.id,
                null(),
                table.c.stage,
                literal("imported", moves.c.reason.type),
                literal(ctx.now, moves.c.occurred_at.type),
                literal(ctx.actor.user_id, moves.c.actor_id.type),
            )
            names = ["contact_id", "from_stage", "to_stage", "reason", "occurred_at", "actor_id"]
            connection.execute(insert(LifecycleChange).from_select(names, new.where(table.c.id.between(first, last))))
            return list(range(first, last + 1))
        ids = self._read_back_ids(ctx, columns, rows)
        lifecycle = {"from_stage": None, "reason": "imported", "occurred_at": ctx.now, "actor_id": ctx.actor.user_id}
        if "stage" in columns:
            stage = columns.index("stage")
            params = [(contact_id, row[stage]) for contact_id, row in zip(ids, rows, strict=True)]
            bulk_insert(ctx, moves, ("contact_id", "to_stage"), params, lifecycle)
        else:
            bulk_insert(ctx, moves, ("contact_id",), [(contact_id,) for contact_id in ids],
                        {**lifecycle, "to_stage": shared["stage"]})  # fmt: skip
        return ids

    @staticmethod
    def _read_back_ids(ctx: HookContext, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> list[int]:
        """The ids of just-inserted *rows*, found by email, else (phone-only rows) by phone."""
        table = Contact.__table__
        email = columns.index("email_normalized") if "email_normalized" in columns else None
        phone = columns.index("phone_normalized") if "phone_normalized" in columns else None
        keys = [(row[email] if email is not None else None) or row[phone] for row in rows]  # type: ignore[index]
        emails = [row[email] for row in rows if row[email]] if email is not None else []
        phones = [row[phone] for row in rows if email is None or not row[email]] if phone is not None else []
        by_key: dict[str, int] = {}
        if emails:
            query = select(table.c.id, table.c.email_normalized).where(
                table.c.email_normalized.in_(bindparam("emails", emails, expanding=True))
            )
            by_key.update((email, contact_id) for contact_id, email in ctx.session.execute(query))
        if phones:  # new phone-only contacts: the newest of this unit of work with that phone
            query = (
                select(func.max(table.c.id), table.c.phone_normalized)
                .where(table.c.phone_normalized.in_(bindparam("phones", phones, expanding=True)),
                       table.c.email_normalized.is_(None), table.c.created_at == ctx.now)
                .group_by(table.c.phone_normalized)
            )  # fmt: skip
            by_key.update((phone, contact_id) for contact_id, phone in ctx.session.execute(query))
        return [by_key[key] for key in keys]

    def _organizations(self, ctx: HookContext, batch: _Rows) -> None:
        names = {v["organization"] for _, _, v in batch if v.get("organization")}
        if len(self.organizations) > 50_000:
            self.organizations.clear()
        missing = names - self.organizations.keys()
        if missing:
            for org_id, name in ctx.session.execute(
                select(Organization.id, Organization.name).where(Organization.name.in_(missing))
            ):
                self.organizations.setdefault(name, org_id)
            new = sorted(missing - self.organizations.keys())
            if new and not self.dry_run:
                ids = ctx.session.scalars(
                    insert(Organization).returning(Organization.id, sort_by_parameter_order=True),
                    [{"name": name, "custom": {}, "created_at": ctx.now} for name in new],
                )
                self.organizations.update(zip(new, ids, strict=True))
        for _, _, values in batch:
            name = values.pop("organization", None)
            if name:
                values["organization_id"] = self.organizations.get(name)

    def _tags(self, ctx: HookContext, tag_rows: list[tuple[int, Sequence[str]]]) -> None:
        if not tag_rows:
            return
        names = sorted({name for _, tags in tag_rows for name in tags})
        query = select(Tag.name, Tag.id).where(Tag.name.in_(names))
        known: dict[str, int] = {name: tag_id for name, tag_id in ctx.session.execute(query)}  # noqa: C416
        new = [name for name in names if name not in known]
        if new:
            ids = ctx.session.scalars(insert(Tag).returning(Tag.id, sort_by_parameter_order=True),
                                      [{"name": name} for name in new])  # fmt: skip
            known.update(zip(new, ids, strict=True))
        wanted = {(contact_id, known[name]) for contact_id, tags in tag_rows for name in tags}
        contact_ids = sorted({contact_id for contact_id, _ in tag_rows})
        have = {
            (contact_id, tag_id)
            for contact_id, tag_id in ctx.session.execute(
                select(ContactTag.contact_id, ContactTag.tag_id).where(ContactTag.contact_id.in_(contact_ids))
            )
        }
        rows = [{"contact_id": c, "tag_id": t} for c, t in sorted(wanted - have)]
        if rows:
            ctx.session.execute(insert(ContactTag), rows)

    # -- lookups --------------------------------------------------------------------

    def _custom_fields(self, ctx: HookContext) -> dict[str, FieldDef]:
        from crmcore.services.fields import custom_field_defs

        return dict(custom_field_defs(ctx, "contact"))

    def _users(self, ctx: HookContext) -> dict[str, int]:
        users: dict[str, int] = {}
        for user_id, email in ctx.session.execute(select(User.id, User.email).where(User.active.is_(True))):
            users[email.lower()] = user_id
            users[str(user_id)] = user_id
        return users


def bulk_insert(
    ctx: HookContext,
    table: Any,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    constants: Mapping[str, Any] | None = None,
) -> None:
    """One ``executemany`` of *rows* (values in the order of *columns*) straight to the driver.

    *constants* (the batch's time, a fixed reason) are converted once and
    appended to every row; only the varying values go through their column
    type's bind processor row by row. This skips SQLAlchemy's per-row
    parameter building, which costs more than the insert itself on large
    imports, while keeping each dialect's conversions (JSON, dates, booleans).
    On SQLite, constants that convert to a number or plain text are written
    into the statement instead of being bound again for every row.
    """
    if not rows:
        return
    connection = ctx.session.connection()
    dialect = connection.dialect

    def processor(key: str) -> Any:
        return table.c[key].type.dialect_impl(dialect).bind_processor(dialect)

    bound: dict[str, Any] = {}
    written: dict[str, str] = {}
    for key, value in (constants or {}).items():
        converted = value if value is None or (convert := processor(key)) is None else convert(value)
        literal_sql = _sqlite_literal(converted) if dialect.name == "sqlite" else None
        if literal_sql is None:
            bound[key] = converted
        else:
            written[key] = literal_sql
    fixed_values = tuple(bound.values())
    converters = [(index, convert) for index, key in enumerate(columns) if (convert := processor(key)) is not None]
    names = [*columns, *bound, *written]
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle == "qmark" else "%s"  # psycopg and PyMySQL both take %s
    statement = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
                 f"VALUES ({', '.join([mark] * (len(columns) + len(bound)) + list(written.values()))})")  # fmt: skip
    params: Sequence[Sequence[Any]]
    if not converters:
        params = [(*row, *fixed_values) for row in rows] if fixed_values else rows
    else:
        params = []
        for row in rows:
            values = list(row)
            for index, convert in converters:
                if values[index] is not None:
                    values[index] = convert(values[index])
            params.append((*values, *fixed_values))
    connection.exec_driver_sql(statement, params)


def _sqlite_literal(value: Any) -> str | None:
    """*value*, as the driver would bind it, written as an SQLite literal; None where it must stay bound.

    Only NULL, integers and text without a NUL character: SQLite stores them
    exactly as it stores the bound values (the column's affinity applies alike).
    """
    if value is None:
        return "NULL"
    if type(value) is int:
        return str(value)
    if type(value) is str and "\x00" not in value:
        return "'" + value.replace("'", "''") + "'"
    return None


def existing_ids(
    ctx: HookContext, table: Any, keys: Mapping[str, Sequence[Any]], condition: str | None = None
) -> set[int]:
    """Ids of the rows of *table* whose column (a key of *keys*) holds one of the given values.

    Straight through the driver, in chunks of :data:`_IN_CHUNK` values: an
    expanding ``IN`` costs several microseconds per value in SQLAlchemy (a new
    statement per batch), the plain driver call a tenth of that. *condition*
    is trusted SQL that every row must also meet.
    """
    connection = ctx.session.connection()
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    extra = f" AND {condition}" if condition else ""
    found: set[int] = set()
    for column, values in keys.items():
        for start in range(0, len(values), _IN_CHUNK):
            chunk = tuple(values[start : start + _IN_CHUNK])
            statement = (f"SELECT id FROM {quote(table.name)} WHERE {quote(column)} "
                         f"IN ({', '.join([mark] * len(chunk))}){extra}")  # fmt: skip
            found.update(row_id for (row_id,) in connection.exec_driver_sql(statement, chunk))
    return found


#: Values per ``IN (...)`` list: well under SQLite's 32,766 parameters.
_IN_CHUNK = 10_000
#: The contact columns an import can fill, in insert order.
_INSERT_COLUMNS = ("email", "email_normalized", "phone", "phone_normalized", "first_name", "last_name", "title",
                   "organization_id", "owner_id", "country", "region", "city", "language", "timezone",
                   "birth_date", "stage", "source", "custom", "do_not_contact", "do_not_track")  # fmt: skip
#: The columns a mapped field fills, where they differ from the field's name (custom.* fill ``custom``).
_FIELD_COLUMNS = {"email": ("email", "email_normalized"), "phone": ("phone", "phone_normalized"),
                  "organization": ("organization_id",), "owner": ("owner_id",), "tags": ()}  # fmt: skip


def _columns_of(field: str) -> tuple[str, ...]:
    return ("custom",) if field.startswith("custom.") else _FIELD_COLUMNS.get(field, (field,))


def _non_core_impls(ctx: HookContext, names: Sequence[str]) -> set[str]:
    from crmcore.plugins import CORE_PLUGIN

    hooks = ctx.crm.plugins.pm.hook
    return {
        name for name in names if any(impl.plugin_name != CORE_PLUGIN for impl in getattr(hooks, name).get_hookimpls())
    }


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        import zoneinfo

        _ZONES.update(zoneinfo.available_timezones())
    return _ZONES


__all__ = ["IMPORT_FIELDS", "ContactImporter", "ImportResult", "check_encoding"]

"""Saved segments: named definitions over contact data, compiled to one SQL query.

A definition is plain JSON-able data, so it can be stored, diffed and typed
on the command line::

    {"all": [
        {"field": "stage", "op": "eq", "value": "customer"},
        {"field": "custom.plan", "op": "in", "value": ["pro", "team"]},
        {"tag": "vip"},
        {"touchpoint": {"kind": "email_click", "campaign": "spring", "within_days": 30, "min_count": 2}},
        {"not": {"purchase": {"product": "PRO", "within_days": 365}}},
        {"consent": {"purpose": "marketing", "channel": "email"}},
    ]}

``all`` / ``any`` / ``not`` combine conditions. Every condition becomes SQL
(``EXISTS``, ``IN (... GROUP BY ... HAVING ...)``): members are never found by
looping over contacts in Python. Recency (``within_days``) counts back from
the unit of work's clock. Erased and merged contacts are never members.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    func,
    not_,
    or_,
    select,
    true,
)

from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.models import (
    Contact,
    ContactTag,
    Product,
    Purchase,
    PurchaseLine,
    Segment,
    Stage,
    Tag,
    TouchKind,
    Touchpoint,
)
from crmcore.services.base import Service
from crmcore.validation import clean_text

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.services.fields import FieldDef

#: Contact columns a segment can test, with their kind.
CONTACT_FIELDS: dict[str, str] = {
    "id": "integer", "email": "text", "first_name": "text", "last_name": "text", "title": "text",
    "stage": "stage", "score": "integer", "owner_id": "integer", "organization_id": "integer",
    "source": "text", "country": "text", "region": "text", "city": "text", "language": "text",
    "timezone": "text", "birth_date": "date", "do_not_contact": "bool", "do_not_track": "bool",
    "created_at": "datetime", "updated_at": "datetime", "last_activity_at": "datetime",
    "stage_changed_at": "datetime", "phone": "text",
}  # fmt: skip
#: Comparison operators of a ``field`` condition.
OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "contains", "startswith",
       "is_null", "within_days", "older_than_days")  # fmt: skip
#: The kinds of condition, one key each.
CONDITIONS = ("all", "any", "not", "field", "tag", "touchpoint", "purchase", "consent", "segment")
TOUCH_KEYS = ("kind", "campaign", "source", "medium", "ad", "affiliate", "within_days", "min_count", "max_count")
PURCHASE_KEYS = ("product", "min_total", "max_total", "within_days", "min_count", "max_count", "min_sum")
_MAX_DEPTH = 32


def _bad(path: str, message: str) -> ValidationError:
    return ValidationError({f"definition{path}": message})


def _number(value: Any, path: str, *, integer: bool = False) -> Any:
    if isinstance(value, bool):
        raise _bad(path, f"{value!r} is not a number")
    try:
        if integer:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            number: Any = int(value)
        else:
            number = Decimal(str(value))
            if not number.is_finite():
                raise ValueError
    except (TypeError, ValueError, InvalidOperation):
        raise _bad(path, f"{value!r} is not {'a whole number' if integer else 'a number'}") from None
    return number


def _count(value: Any, path: str) -> int:
    number: int = _number(value, path, integer=True)
    if number < 0:
        raise _bad(path, "must be 0 or more")
    return number


class Compiler:
    """Turns one definition into a SQL condition on :class:`Contact` (validating as it goes)."""

    def __init__(self, ctx: HookContext, *, seen: tuple[str, ...] = ()) -> None:
        self.ctx = ctx
        self.now = ctx.now
        self.seen = seen
        self._custom: dict[str, FieldDef] | None = None

    # -- entry ------------------------------------------------------------------

    def compile(self, definition: Any, path: str = "", depth: int = 0) -> ColumnElement[bool]:
        """The SQL condition of *definition*; ValidationError naming the path otherwise."""
        if depth > _MAX_DEPTH:
            raise _bad(path, f"nested deeper than {_MAX_DEPTH} levels")
        if isinstance(definition, Mapping) and "field" in definition:
            return self.field(definition, path)
        if not isinstance(definition, Mapping) or len(definition) != 1:
            raise _bad(path, f"a condition is an object with one key of: {', '.join(CONDITIONS)}")
        [(key, value)] = definition.items()
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise _bad(f"{path}.{key}", "give a non-empty list of conditions")
            parts = [self.compile(item, f"{path}.{key}[{i}]", depth + 1) for i, item in enumerate(value)]
            return and_(*parts) if key == "all" else or_(*parts)
        if key == "not":
            return not_(self.compile(value, f"{path}.not", depth + 1))
        handler: dict[str, Callable[[Any, str], ColumnElement[bool]]] = {
            "tag": self.tag, "touchpoint": self.touchpoint, "purchase": self.purchase,
            "consent": self.consent, "segment": self.segment,
        }  # fmt: skip
        if key not in handler:
            raise _bad(path, f"unknown condition {key!r}; conditions: {', '.join(CONDITIONS)}")
        return handler[key](value, f"{path}.{key}")

    # -- fields -----------------------------------------------------------------

    def custom_fields(self) -> dict[str, FieldDef]:
        """The declared contact custom fields, by name."""
        if self._custom is None:
            from crmcore.services.fields import custom_field_defs

            self._custom = dict(custom_field_defs(self.ctx, "contact"))
        return self._custom

    def valid_fields(self) -> builtins.list[str]:
        """Every field name a ``field`` condition accepts."""
        return [*CONTACT_FIELDS, *(f"custom.{name}" for name in sorted(self.custom_fields()))]

    def field(self, condition: Mapping[str, Any], path: str) -> ColumnElement[bool]:
        """``{"field": NAME, "op": OP, "value": V}``."""
        extra = set(condition) - {"field", "op", "value"}
        if extra:
            raise _bad(path, f"unknown key(s) {', '.join(sorted(extra))}; a field condition has field, op, value")
        name = condition.get("field")
        op = condition.get("op", "eq")
        value = condition.get("value")
        if op not in OPS:
            raise _bad(f"{path}.op", f"unknown operator {op!r}; operators: {', '.join(OPS)}")
        column: Any
        if isinstance(name, str) and name in CONTACT_FIELDS:
            kind = CONTACT_FIELDS[name]
            column = getattr(Contact, name)
        elif isinstance(name, str) and name.startswith("custom.") and name[7:] in self.custom_fields():
            declared = self.custom_fields()[name[7:]]
            kind = {"number": "number", "integer": "number", "bool": "bool", "date": "text"}.get(declared.type, "text")
            element = Contact.custom[name[7:]]
            column = {"number": element.as_float(), "bool": element.as_boolean()}.get(kind, element.as_string())
        else:
            raise _bad(f"{path}.field", f"unknown field {name!r}; fields: {', '.join(self.valid_fields())}")
        return self._compare(column, kind, op, value, f"{path}.value")

    def _value(self, kind: str, value: Any, path: str) -> Any:
        if value is None:
            raise _bad(path, "give a value (use op is_null to test for a missing one)")
        if kind == "stage":
            if value not in {s.value for s in Stage}:
                raise _bad(path, f"unknown stage {value!r}; stages: {', '.join(s.value for s in Stage)}")
            return str(value)
        if kind in ("integer", "number"):
            return _number(value, path, integer=kind == "integer")
        if kind == "bool":
            if not isinstance(value, bool):
                raise _bad(path, f"{value!r} is not true or false")
            return value
        if kind in ("date", "datetime"):
            from crmcore.validation import parse_date

            try:
                if kind == "date":
                    return parse_date(value, "value") if not isinstance(value, date) else value
                parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=self.now.tzinfo)
            except (ValueError, ValidationError):
                raise _bad(path, f"{value!r} is not an ISO date") from None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise _bad(path, f"{value!r} is not text")
        return str(value)

    def _compare(self, column: Any, kind: str, op: str, value: Any, path: str) -> ColumnElement[bool]:
        if op == "is_null":
            if not isinstance(value, bool):
                raise _bad(path, "is_null takes true or false")
            return column.is_(None) if value else column.is_not(None)  # type: ignore[no-any-return]
        if op in ("within_days", "older_than_days"):
            if kind not in ("datetime", "date"):
                raise _bad(path, f"{op} only applies to dates and times")
            cutoff: Any = self.now - timedelta(days=_count(value, path))
            cutoff = cutoff.date() if kind == "date" else cutoff
            return column >= cutoff if op == "within_days" else column < cutoff  # type: ignore[no-any-return]
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise _bad(path, f"{op} takes a non-empty list")
            values = [self._value(kind, item, f"{path}[{i}]") for i, item in enumerate(value)]
            if op == "in":
                return column.in_(values)  # type: ignore[no-any-return]
            return or_(column.is_(None), column.not_in(values))
        if op in ("contains", "startswith"):
            if kind != "text":
                raise _bad(path, f"{op} only applies to text")
            text = self._value(kind, value, path).lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{text}%" if op == "contains" else f"{text}%"
            return func.lower(column).like(pattern, escape="\\")
        typed = self._value(kind, value, path)
        if kind == "bool" and op not in ("eq", "ne"):
            raise _bad(path, f"{op} does not apply to true/false")
        if op == "ne":
            return or_(column.is_(None), column != typed)
        compare = {"eq": "__eq__", "lt": "__lt__", "lte": "__le__", "gt": "__gt__", "gte": "__ge__"}[op]
        return getattr(column, compare)(typed)  # type: ignore[no-any-return]

    # -- relations ----------------------------------------------------------------

    def tag(self, value: Any, path: str) -> ColumnElement[bool]:
        """``{"tag": "vip"}``: the contact carries that tag."""
        if not isinstance(value, str) or not value.strip():
            raise _bad(path, "give a tag name")
        return exists(
            select(ContactTag.contact_id)
            .join(Tag, Tag.id == ContactTag.tag_id)
            .where(ContactTag.contact_id == Contact.id, Tag.name == value.strip())
        )

    def _options(self, value: Any, path: str, keys: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _bad(path, f"give an object with any of: {', '.join(keys)}")
        unknown = sorted(set(value) - set(keys))
        if unknown:
            raise _bad(path, f"unknown key(s) {', '.join(map(str, unknown))}; keys: {', '.join(keys)}")
        return dict(value)

    def _counted(
        self, contact_col: Any, where: list[Any], options: dict[str, Any], path: str,
        having_extra: ColumnElement[bool] | None = None,
    ) -> ColumnElement[bool]:  # fmt: skip
        low = _count(options.get("min_count", 1), f"{path}.min_count")
        high = options.get("max_count")
        high = None if high is None else _count(high, f"{path}.max_count")
        rows = select(contact_col).where(contact_col.is_not(None), *where)
        parts: list[ColumnElement[bool]] = []
        if having_extra is not None:
            parts.append(Contact.id.in_(rows.group_by(contact_col).having(having_extra)))
        if low == 1 and high is None and having_extra is None:
            return exists(rows.where(contact_col == Contact.id))
        if low > 1:
            parts.append(Contact.id.in_(rows.group_by(contact_col).having(func.count() >= low)))
        elif low == 1:
            parts.append(exists(rows.where(contact_col == Contact.id)))
        if high is not None:
            parts.append(Contact.id.not_in(rows.group_by(contact_col).having(func.count() > high)))
        return and_(*parts) if parts else true()

    def touchpoint(self, value: Any, path: str) -> ColumnElement[bool]:
        """``{"touchpoint": {"kind", "campaign", "source", ..., "within_days", "min_count", "max_count"}}``."""
        options = self._options(value, path, TOUCH_KEYS)
        where: list[Any] = []
        kinds = options.get("kind")
        if kinds is not None:
            kinds = [kinds] if isinstance(kinds, str) else kinds
            valid = [k.value for k in TouchKind]
            if not isinstance(kinds, list) or not kinds or any(k not in valid for k in kinds):
                raise _bad(f"{path}.kind", f"unknown kind {options['kind']!r}; kinds: {', '.join(valid)}")
            where.append(Touchpoint.kind.in_(kinds))
        for key in ("campaign", "source", "medium", "ad", "affiliate"):
            if key in options:
                text = options[key]
                if not isinstance(text, str):
                    raise _bad(f"{path}.{key}", "give a text")
                where.append(getattr(Touchpoint, key) == text)
        if "within_days" in options:
            where.append(Touchpoint.occurred_at >= self.now - timedelta(days=_count(options["within_days"], path)))
        return self._counted(Touchpoint.contact_id, where, options, path)

    def purchase(self, value: Any, path: str) -> ColumnElement[bool]:
        """``{"purchase": {...}}`` with any of product, min/max_total, within_days, min/max_count, min_sum."""
        options = self._options(value, path, PURCHASE_KEYS)
        where: list[Any] = []
        if "product" in options:
            skus = options["product"]
            skus = [skus] if isinstance(skus, str) else skus
            if not isinstance(skus, list) or not skus or not all(isinstance(s, str) for s in skus):
                raise _bad(f"{path}.product", "give a SKU or a list of SKUs")
            known = set(self.ctx.session.scalars(select(Product.sku).where(Product.sku.in_(skus))))
            if missing := [s for s in skus if s not in known]:
                raise _bad(f"{path}.product", f"unknown product(s) {', '.join(missing)}")
            where.append(
                exists(
                    select(PurchaseLine.id)
                    .join(Product, Product.id == PurchaseLine.product_id)
                    .where(PurchaseLine.purchase_id == Purchase.id, Product.sku.in_(skus))
                )
            )
        if "min_total" in options:
            where.append(Purchase.total >= _number(options["min_total"], f"{path}.min_total"))
        if "max_total" in options:
            where.append(Purchase.total <= _number(options["max_total"], f"{path}.max_total"))
        if "within_days" in options:
            where.append(Purchase.purchased_at >= self.now - timedelta(days=_count(options["within_days"], path)))
        having = None
        if "min_sum" in options:
            having = func.sum(Purchase.total) >= _number(options["min_sum"], f"{path}.min_sum")
        return self._counted(Purchase.contact_id, where, options, path, having)

    def consent(self, value: Any, path: str) -> ColumnElement[bool]:
        """``{"consent": {"purpose": "marketing", "channel": "email"}}``: holds that consent."""
        from crmcore.services.consent import consented_query

        options = self._options(value, path, ("purpose", "channel"))
        try:
            query = consented_query(options.get("purpose"), options.get("channel", "email"))  # type: ignore[arg-type]
        except ValidationError as exc:
            raise _bad(path, "; ".join(exc.errors.values())) from None
        return Contact.id.in_(query)

    def segment(self, value: Any, path: str) -> ColumnElement[bool]:
        """``{"segment": "other"}``: a member of another saved segment (no cycles)."""
        if not isinstance(value, str):
            raise _bad(path, "give a segment name")
        if value in self.seen:
            raise _bad(path, f"segment {value!r} refers back to itself ({' -> '.join([*self.seen, value])})")
        row = self.ctx.first(Segment, Segment.name == value)
        if row is None:
            raise _bad(path, f"unknown segment {value!r}")
        return Compiler(self.ctx, seen=(*self.seen, value)).compile(row.definition)


def members_query(ctx: HookContext, definition: Any, *, name: str | None = None) -> Select[int]:
    """``select(Contact.id)`` of the live contacts matching *definition*."""
    condition = Compiler(ctx, seen=(name,) if name else ()).compile(definition)
    return select(Contact.id).where(Contact.erased_at.is_(None), Contact.merged_into_id.is_(None), condition)


def _definition(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValidationError({"definition": f"not valid JSON: {exc}"}) from None
    if not isinstance(value, dict):
        raise ValidationError({"definition": 'give an object such as {"field": "stage", "value": "customer"}'})
    return value


class SegmentService(Service):
    """``crm.segments``: saved, named segments; email campaigns and reports target them."""

    def create(self, name: str, definition: Any, *, description: str | None = None, actor: Any = None) -> Segment:
        """Save a segment; the definition is validated (compiled once) first."""
        text = clean_text(name, "name", 120, required=True)
        assert text is not None
        body = _definition(definition)
        with self.crm.transaction(actor) as ctx:
            if ctx.first(Segment, Segment.name == text):
                raise Conflict(f"a segment named {text!r} already exists")
            members_query(ctx, body, name=text)
            segment = Segment(name=text, definition=body, description=clean_text(description, "description", 2000),
                              created_at=ctx.now, updated_at=ctx.now)  # fmt: skip
            ctx.session.add(segment)
            ctx.session.flush()
            ctx.audit("segment.create", "segment", segment.id, {"name": text, "definition": body})
        return segment

    def update(self, name: str, definition: Any, *, actor: Any = None) -> Segment:
        """Replace a segment's definition."""
        body = _definition(definition)
        with self.crm.transaction(actor) as ctx:
            segment = self._get(ctx, name)
            members_query(ctx, body, name=segment.name)
            segment.definition, segment.updated_at = body, ctx.now
            ctx.audit("segment.update", "segment", segment.id, {"definition": body})
        return segment

    def delete(self, name: str, *, actor: Any = None) -> None:
        """Delete a saved segment."""
        with self.crm.transaction(actor) as ctx:
            segment = self._get(ctx, name)
            ctx.session.delete(segment)
            ctx.audit("segment.delete", "segment", segment.id, {"name": segment.name})

    def get(self, name: str) -> Segment:
        """A saved segment by name."""
        with self.crm.transaction(readonly=True) as ctx:
            return self._get(ctx, name)

    def list(self) -> builtins.list[Segment]:
        """Every saved segment, by name."""
        with self.crm.transaction(readonly=True) as ctx:
            return builtins.list(ctx.session.scalars(select(Segment).order_by(Segment.name)))

    def query(self, name: str, ctx: HookContext) -> Select[int]:
        """The members' ids of segment *name* (saved here or answered by a plugin), inside *ctx*."""
        answer = ctx.call("crm_segment_query", name=name)
        if answer is None:
            raise NotFound(f"no segment {name!r}")
        return answer  # type: ignore[no-any-return]

    def members(self, name: str, *, limit: int | None = None, offset: int = 0) -> builtins.list[Contact]:
        """The contacts in segment *name*, by id."""
        with self.crm.transaction(readonly=True) as ctx:
            query = select(Contact).where(Contact.id.in_(self.query(name, ctx))).order_by(Contact.id).offset(offset)
            if limit is not None:
                query = query.limit(limit)
            return builtins.list(ctx.session.scalars(query))

    def count(self, name: str) -> int:
        """How many contacts segment *name* holds."""
        with self.crm.transaction(readonly=True) as ctx:
            return int(ctx.scalar(select(func.count()).select_from(self.query(name, ctx).subquery())) or 0)

    def preview(self, definition: Any) -> int:
        """How many contacts an unsaved *definition* would hold (validates it too)."""
        with self.crm.transaction(readonly=True) as ctx:
            query = members_query(ctx, _definition(definition))
            return int(ctx.scalar(select(func.count()).select_from(query.subquery())) or 0)

    def _get(self, ctx: HookContext, name: str) -> Segment:
        segment: Segment | None = ctx.first(Segment, Segment.name == name)
        if segment is None:
            known = builtins.list(ctx.session.scalars(select(Segment.name).order_by(Segment.name)))
            raise NotFound(f"no segment {name!r}; segments: {', '.join(known) or 'none'}")
        return segment


def saved_segment_query(name: str, ctx: HookContext) -> Select[int] | None:
    """The core's answer to ``crm_segment_query``: the saved segment of that name, compiled."""
    row = ctx.first(Segment, Segment.name == name)
    if row is None:
        return None
    return members_query(ctx, row.definition, name=row.name)


__all__ = ["CONDITIONS", "CONTACT_FIELDS", "OPS", "Compiler", "SegmentService", "members_query"]

"""Validation of contact input: every field checked, every error reported at once."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from sqlalchemy import func, select

from crmcore.errors import ValidationError
from crmcore.models import CustomField, Organization, Stage
from crmcore.services.base import get_user
from crmcore.validation import (
    clean_text,
    country_code,
    normalize_phone,
    parse_date,
)

if TYPE_CHECKING:
    from crmcore.context import HookContext

#: The fields a contact can be created or updated with.
CONTACT_FIELDS = frozenset(
    {
        "email", "phone", "first_name", "last_name", "title", "organization",
        "organization_id", "owner", "source", "country", "region", "city",
        "language", "timezone", "birth_date", "custom", "tags", "do_not_contact",
        "do_not_track", "stage",
    }
)  # fmt: skip

_TEXT_LIMITS = {
    "first_name": 120, "last_name": 120, "title": 120, "source": 120,
    "region": 120, "city": 120, "language": 16,
}  # fmt: skip


def clean_contact(
    ctx: HookContext, data: Mapping[str, Any], *, creating: bool, custom_before: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validate contact *data*; return column values (plus ``tags``) or raise with every error."""
    unknown = sorted(set(data) - CONTACT_FIELDS)
    errors: dict[str, str] = dict.fromkeys(unknown, "unknown field")
    values: dict[str, Any] = {}

    def attempt(field: str, fn: Any) -> None:
        try:
            fn()
        except ValidationError as exc:
            errors.update(exc.errors if exc.errors else {field: str(exc)})

    if "email" in data:

        def email() -> None:
            from crmcore.validation import fast_normalize_email  # plain addresses skip email-validator

            if data["email"] in (None, ""):
                values["email"] = values["email_normalized"] = None
            else:
                values["email"], values["email_normalized"] = fast_normalize_email(str(data["email"]))

        attempt("email", email)
    if "phone" in data:

        def phone() -> None:
            raw = clean_text(data["phone"], "phone", 64)
            values["phone"] = raw
            values["phone_normalized"] = normalize_phone(raw, ctx.crm.settings.phone_region) if raw else None

        attempt("phone", phone)
    for field, limit in _TEXT_LIMITS.items():
        if field in data:
            attempt(field, lambda f=field, n=limit: values.__setitem__(f, clean_text(data[f], f, n)))
    if "country" in data:
        attempt("country", lambda: values.__setitem__("country", country_code(data["country"])))
    if "birth_date" in data:
        attempt("birth_date", lambda: values.__setitem__("birth_date", parse_date(data["birth_date"], "birth_date")))
    if data.get("timezone"):

        def zone() -> None:
            try:
                ZoneInfo(str(data["timezone"]))
            except (ZoneInfoNotFoundError, ValueError):
                raise ValidationError({"timezone": f"unknown time zone {data['timezone']!r}"}) from None
            values["timezone"] = str(data["timezone"])

        attempt("timezone", zone)
    if "owner" in data:

        def owner() -> None:
            user = get_user(ctx, data["owner"])
            values["owner_id"] = user.id if user else None

        attempt("owner", owner)
    if "organization" in data or "organization_id" in data:
        attempt("organization", lambda: values.__setitem__("organization_id", _organization(ctx, data)))
    if "stage" in data and data["stage"] is not None:
        if str(data["stage"]) not in {s.value for s in Stage}:
            errors["stage"] = f"unknown stage {data['stage']!r}; stages: {', '.join(s.value for s in Stage)}"
        else:
            values["stage"] = str(data["stage"])
    for flag in ("do_not_contact", "do_not_track"):
        if flag in data:
            values[flag] = bool(data[flag])
    if "tags" in data:
        tags = data["tags"] or []
        if isinstance(tags, str):
            tags = list(tags.split(","))
        cleaned = []
        for tag in tags:
            try:
                text = clean_text(tag, "tags", 120)
            except ValidationError as exc:
                errors.update(exc.errors)
                continue
            if text:
                cleaned.append(text)
        values["tags"] = sorted(set(cleaned))
    if "custom" in data or creating:
        attempt(
            "custom",
            lambda: values.__setitem__(
                "custom", clean_custom(ctx, "contact", data.get("custom") or {}, custom_before, creating=creating)
            ),
        )
    if errors:
        raise ValidationError(errors)
    return values


def _organization(ctx: HookContext, data: Mapping[str, Any]) -> int | None:
    if data.get("organization_id") is not None:
        org = ctx.session.get(Organization, int(data["organization_id"]))
        if org is None:
            raise ValidationError({"organization_id": f"no organization {data['organization_id']}"})
        return org.id
    name = clean_text(data.get("organization"), "organization", 255)
    if not name:
        return None
    org = ctx.session.scalars(
        select(Organization).where(func.lower(Organization.name) == name.lower()).limit(1)
    ).first()
    if org is None:
        org = Organization(name=name, created_at=ctx.now, custom={})
        ctx.session.add(org)
        ctx.session.flush()
        ctx.audit("organization.create", "organization", org.id, {"name": name})
    return org.id


@attrs.frozen(kw_only=True)
class FieldDef:
    """A custom field declaration as validation reads it: an immutable copy of its row, safe to share."""

    entity: str
    name: str
    label: str
    type: str
    choices: tuple[str, ...] | None
    required: bool
    owner: str
    description: str | None

    @classmethod
    def of(cls, row: CustomField) -> FieldDef:
        """The declaration of *row*."""
        return cls(entity=row.entity, name=row.name, label=row.label, type=row.type,
                   choices=tuple(row.choices) if row.choices else None, required=bool(row.required),
                   owner=row.owner, description=row.description)  # fmt: skip


def custom_field_defs(ctx: HookContext, entity: str) -> Mapping[str, FieldDef]:
    """The declared custom fields of *entity*, by name (cached: see :mod:`crmcore.metadata`)."""

    def load() -> Mapping[str, FieldDef]:
        rows = ctx.session.scalars(select(CustomField).where(CustomField.entity == entity))
        return MappingProxyType({row.name: FieldDef.of(row) for row in rows})

    return ctx.metadata(f"custom_fields:{entity}", load)


def clean_custom(
    ctx: HookContext,
    entity: str,
    values: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    *,
    creating: bool,
) -> dict[str, Any]:
    """Validate custom field *values* against their declarations; merge onto *before*."""
    if not isinstance(values, Mapping):
        raise ValidationError({"custom": "must be a mapping of field names to values"})
    defs = custom_field_defs(ctx, entity)
    errors: dict[str, str] = {}
    result = dict(before or {})
    for name, raw in values.items():
        field = defs.get(name)
        if field is None:
            known = ", ".join(sorted(defs)) or "none declared"
            errors[f"custom.{name}"] = f"unknown custom field (known: {known})"
            continue
        if raw is None or raw == "":
            result.pop(name, None)
            continue
        try:
            result[name] = convert_custom(field, raw)
        except ValidationError as exc:
            errors[f"custom.{name}"] = exc.errors.get("__all__", str(exc))
    if creating:
        for name, field in defs.items():
            if field.required and result.get(name) in (None, ""):
                errors[f"custom.{name}"] = "is required"
    if errors:
        raise ValidationError(errors)
    return result


def convert_custom(field: FieldDef, raw: Any) -> Any:
    """Convert one raw value to the JSON form of the field's type."""
    kind = field.type
    try:
        if kind == "text":
            text = clean_text(raw, field.name, 1000)
            return text
        if kind == "integer":
            if isinstance(raw, bool):
                raise ValueError
            return int(str(raw).strip())
        if kind == "number":
            number = Decimal(str(raw).strip())
            if not number.is_finite():
                raise ValueError
            return float(number)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError
        if kind == "date":
            parsed = parse_date(raw, field.name)
            return parsed.isoformat() if parsed else None
        if kind == "choice":
            text = str(raw).strip()
            if text not in (field.choices or []):
                raise ValidationError(f"{text!r} is not one of {', '.join(field.choices or [])}")
            return text
    except (ValueError, InvalidOperation):
        raise ValidationError(f"{raw!r} is not a valid {kind}") from None
    raise ValidationError(f"field has unknown type {kind!r}")

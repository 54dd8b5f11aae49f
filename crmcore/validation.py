"""Normalizing and validating what people type: emails, phones, names, codes.

Emails are checked by ``email-validator`` (syntax only, no DNS) and compared
lower-cased; phones are parsed by ``phonenumbers`` and stored in E.164.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from crmcore.errors import ValidationError

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalize_email(value: str, field: str = "email") -> tuple[str, str]:
    """Return ``(email as given but trimmed, normalized lower-case email)``."""
    import email_validator

    raw = (value or "").strip()
    if len(raw) > 320:
        raise ValidationError({field: "is longer than 320 characters"})
    try:
        result = email_validator.validate_email(raw, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise ValidationError({field: f"{raw!r} is not a valid email address: {exc}"}) from None
    return result.normalized, result.normalized.lower()


# Plain ASCII addresses take a fast path; anything else is left to email-validator.
_SIMPLE_EMAIL = re.compile(
    r"(?P<local>[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*)@"
    r"(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?P<tld>[A-Za-z]{2,63}))"
)
_SPECIAL_TLDS = {"arpa", "invalid", "local", "localhost", "onion", "test"}


def fast_normalize_email(value: str) -> tuple[str, str]:
    """:func:`normalize_email`, with a fast path for plain ASCII addresses.

    Gives exactly what email-validator gives for the addresses it accepts
    (the domain lower-cased); everything unusual goes to email-validator.
    """
    raw = value.strip()
    match = _SIMPLE_EMAIL.fullmatch(raw)
    if (
        match is not None
        and len(raw) <= 254
        and match.end("local") <= 64
        and match["tld"].lower() not in _SPECIAL_TLDS
    ):
        lowered = raw.lower()
        if raw == lowered:  # the usual case: nothing to change
            return raw, raw
        at = match.end("local")  # the local part keeps its case, the domain is lower-cased
        return raw[: at + 1] + lowered[at + 1 :], lowered
    return normalize_email(raw)


def normalize_phone(value: str, default_region: str | None, field: str = "phone") -> str:
    """Return *value* in E.164 form, or raise a ValidationError saying why not."""
    import phonenumbers

    raw = (value or "").strip()
    if len(raw) > 64:
        raise ValidationError({field: "is longer than 64 characters"})
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError({field: f"{raw!r} is not a phone number: {exc}"}) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError({field: f"{raw!r} is not a valid phone number"})
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def clean_text(value: Any, field: str, max_length: int, *, required: bool = False) -> str | None:
    """Trim *value*, refuse control characters and overlong text; ``None`` for blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError({field: "is required"})
        return None
    if not isinstance(value, str):
        value = str(value)
    text: str = value.strip()
    if _CONTROL.search(text):
        raise ValidationError({field: "contains control characters"})
    if len(text) > max_length:
        raise ValidationError({field: f"is longer than {max_length} characters"})
    return text


def currency_code(value: str | None, default: str, field: str = "currency") -> str:
    """Validate an ISO 4217 code such as ``EUR``."""
    code = (value or default).strip().upper()
    if not _CURRENCY.match(code):
        raise ValidationError({field: f"{value!r} is not a three-letter currency code"})
    return code


def country_code(value: str | None, field: str = "country") -> str | None:
    """Validate an ISO 3166 alpha-2 country code such as ``DE``."""
    if value is None or not str(value).strip():
        return None
    code = str(value).strip().upper()
    if not _COUNTRY.match(code):
        raise ValidationError({field: f"{value!r} is not a two-letter country code"})
    return code


def parse_datetime(value: datetime | str | None, field: str) -> datetime | None:
    """Accept an aware datetime or ISO 8601 text; naive values are taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValidationError({field: f"{value!r} is not an ISO 8601 date/time"}) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_date(value: date | str | None, field: str) -> date | None:
    """Accept a date or ``YYYY-MM-DD`` text."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValidationError({field: f"{value!r} is not a date (YYYY-MM-DD)"}) from None


def positive_amount(value: Any, field: str, *, allow_zero: bool = True) -> Decimal:
    """A non-negative Decimal amount."""
    from crmcore.db import money

    amount = money(value, field)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise ValidationError({field: f"must be {'zero or ' if allow_zero else ''}positive, not {amount}"})
    return amount


def collect_errors(*checks: Any) -> None:
    """Run zero-argument callables, merging their ValidationErrors into one."""
    errors: dict[str, str] = {}
    for check in checks:
        try:
            check()
        except ValidationError as exc:
            errors.update(exc.errors)
    if errors:
        raise ValidationError(errors)


def only_known(values: Mapping[str, Any], known: set[str], what: str) -> None:
    """Refuse keys of *values* that are not in *known*."""
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, f"unknown {what}"))

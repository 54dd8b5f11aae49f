"""Web forms defined by data (web-to-lead): definitions, validation and capture of submissions.

A form lists its fields and what each maps to (a contact field such as
``email``, a custom field as ``custom.<name>``, or nothing: the answer is kept
on the form touchpoint). A submission is validated as a whole (every error at
once, nothing written on error), captures the lead and records a ``form``
touchpoint with the UTM values, referrer, affiliate, ad and click id it came
with. A filled honeypot is accepted silently and dropped; the same person
submitting the same form again within ``settings.form_dedupe_seconds`` is one
submission; a ticked consent box fires ``crm_form_consent_given``.
"""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.models import Contact, TouchKind, Touchpoint, WebForm
from crmcore.services.base import Service
from crmcore.validation import clean_text, normalize_email

if TYPE_CHECKING:
    from crmcore.context import HookContext

#: Field types a form may have.
FIELD_TYPES = ("text", "email", "tel", "textarea", "select", "checkbox", "country", "date", "number")
#: Contact fields a form field may map to (plus ``custom.<name>``).
MAPPABLE = frozenset(
    {"email", "phone", "first_name", "last_name", "title", "organization", "country", "region", "city",
     "language", "birth_date"}
)  # fmt: skip
#: The honeypot: hidden from people by CSS, filled by bots.
HONEYPOT = "website"
CONSENT = "consent"
#: Tracking values a form takes from hidden fields or its page's query string.
TRACKING_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "affiliate", "ad",
                   "campaign", "referrer", "page_url", "gclid", "fbclid", "msclkid", "subid")  # fmt: skip
RESERVED = frozenset({*TRACKING_FIELDS, HONEYPOT, CONSENT})
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")
_CLICK_ID = re.compile(r"^[\x21-\x7e]{1,255}$")
_TRUE = {"1", "true", "on", "yes"}
#: How long the web routes remember a form's definition.
FORM_CACHE_SECONDS = 5.0


@attrs.frozen(kw_only=True)
class SubmissionMeta:
    """What the web layer knows about a submission besides its fields."""

    ip: str | None = None
    referrer: str | None = None
    query: Mapping[str, str] = attrs.field(factory=dict)
    #: Anonymous clicks of this browser (from the click cookie), claimed by the new contact.
    touch_ids: Sequence[int] = ()


@attrs.define
class _Cleaned:
    """A submission after the checks that need no database."""

    fields: dict[str, Any] = attrs.field(factory=dict)
    answers: dict[str, Any] = attrs.field(factory=dict)
    touch: dict[str, Any] = attrs.field(factory=dict)
    consent: bool = False
    errors: dict[str, str] = attrs.field(factory=dict)
    #: Contact field (``email``, ``custom.size``) -> the form field that fills it.
    by_target: dict[str, str] = attrs.field(factory=dict)

    def form_errors(self, errors: Mapping[str, str]) -> dict[str, str]:
        """Errors keyed by contact field, re-keyed by the form's field names."""
        return {self.by_target.get(key, key): message for key, message in errors.items()}


@attrs.frozen(kw_only=True)
class Submission:
    """The outcome of a submission: captured, a repeat within the window, or spam."""

    contact_id: int | None = None
    touchpoint_id: int | None = None
    created: bool = False
    duplicate: bool = False
    spam: bool = False


def _check_fields(fields: Any) -> list[dict[str, Any]]:
    if not isinstance(fields, Sequence) or isinstance(fields, str) or not fields:
        raise ValidationError({"fields": "give at least one field"})
    if len(fields) > 50:
        raise ValidationError({"fields": "a form has at most 50 fields"})
    errors: dict[str, str] = {}
    cleaned: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, spec in enumerate(fields):
        where = f"fields.{index}"
        if not isinstance(spec, Mapping):
            errors[where] = "must be a mapping with name, type, …"
            continue
        unknown = set(spec) - {"name", "label", "type", "required", "maps_to", "choices", "max_length"}
        name = str(spec.get("name") or "")
        kind = str(spec.get("type") or "text")
        maps_to = spec.get("maps_to", name if name in MAPPABLE else None)
        if unknown:
            errors[where] = f"unknown keys: {', '.join(sorted(unknown))}"
        elif not _NAME.match(name):
            errors[where] = f"name {name!r}: use lower-case letters, digits and _"
        elif name in RESERVED or name in seen:
            errors[where] = f"name {name!r} is {'reserved' if name in RESERVED else 'used twice'}"
        elif kind not in FIELD_TYPES:
            errors[where] = f"type {kind!r}; types: {', '.join(FIELD_TYPES)}"
        elif (
            maps_to is not None
            and maps_to not in MAPPABLE
            and not (isinstance(maps_to, str) and maps_to.startswith("custom.") and _NAME.match(maps_to[7:]))
        ):
            errors[where] = f"maps_to {maps_to!r}: a contact field ({', '.join(sorted(MAPPABLE))}) or custom.<name>"
        elif kind == "select" and not (
            isinstance(spec.get("choices"), Sequence)
            and spec["choices"]
            and all(isinstance(c, str) for c in spec["choices"])
        ):
            errors[where] = "a select needs a list of text choices"
        else:
            max_length = spec.get("max_length") or (5000 if kind == "textarea" else 255)
            if not isinstance(max_length, int) or not 1 <= max_length <= 20000:
                errors[where] = "max_length must be a whole number from 1 to 20000"
                continue
            seen.add(name)
            label = clean_text(spec.get("label") or name.replace("_", " ").capitalize(), where, 200)
            cleaned.append({
                "name": name, "label": label, "type": kind, "required": bool(spec.get("required")),
                "maps_to": maps_to, "choices": list(spec.get("choices") or []), "max_length": max_length,
            })  # fmt: skip
    if errors:
        raise ValidationError(errors)
    if not any(f["maps_to"] in ("email", "phone") for f in cleaned):
        raise ValidationError({"fields": "a form needs a field mapped to email or phone"})
    return cleaned


#: Attempts of a capture that collided with a concurrent one.
RETRIES = 5


def backoff(attempt: int) -> None:
    """Wait a few random milliseconds before retrying, so colliding requests spread out."""
    time.sleep(random.uniform(0.001, 0.01) * (attempt + 1))


def retryable(exc: sa_exc.DBAPIError) -> bool:
    """True for a collision with a concurrent transaction, which a retry resolves.

    A unique key inserted at once by two requests (the same email twice: the
    retry matches the contact the other created), and the deadlocks and
    serialization failures databases answer such races with (MariaDB 1213 and
    1205, PostgreSQL 40P01 and 40001).
    """
    if isinstance(exc, sa_exc.IntegrityError):
        return True
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in ("40P01", "40001"):
        return True
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    return bool(args) and args[0] in (1213, 1205)


def _check_type(kind: str, value: str, field: str) -> None:
    """Check an unmapped answer against its field type (email, date, number)."""
    from decimal import Decimal, InvalidOperation

    from crmcore.validation import parse_date

    if kind == "email":
        normalize_email(value, field)
    elif kind == "date":
        parse_date(value, field)
    elif kind == "number":
        try:
            if not Decimal(value).is_finite():
                raise InvalidOperation
        except InvalidOperation:
            raise ValidationError({field: f"{value!r} is not a number"}) from None


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in _TRUE) or value == 1


def _text_value(value: Any) -> str | None:
    """A submitted value as text; lists, mappings and files are refused."""
    if value is None or isinstance(value, bool):
        return None if value is None else ("true" if value else "")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value
    raise ValidationError("must be text")


class FormService(Service):
    """``crm.forms``: create, list and show forms; capture their submissions."""

    def __init__(self, crm: Any) -> None:
        super().__init__(crm)
        self._cache: dict[str, tuple[float, WebForm]] = {}

    def create(
        self,
        slug: str,
        *,
        title: str,
        fields: Sequence[Mapping[str, Any]],
        consent_text: str | None = None,
        consent_purposes: Sequence[str] = ("marketing",),
        consent_required: bool = False,
        thank_you_url: str | None = None,
        thank_you_message: str | None = None,
        allowed_origins: Sequence[str] = (),
        campaign: str | None = None,
        tags: Sequence[str] = (),
        actor: Any = None,
    ) -> WebForm:
        """Define a web form; every problem with the definition is reported at once."""
        from crmcore.links import check_url
        from crmcore.validation import collect_errors

        values: dict[str, Any] = {}

        def put(key: str, fn: Any) -> Any:
            return lambda: values.__setitem__(key, fn())

        def origins() -> list[str]:
            result = []
            for origin in allowed_origins:
                url = check_url(origin, "allowed_origins").rstrip("/")
                if url.count("/") != 2:
                    raise ValidationError({"allowed_origins": f"{origin!r} is not an origin (scheme://host[:port])"})
                result.append(url.lower())
            return result

        def purposes() -> list[str]:
            from crmcore.services.consent import parse_purposes

            items = [clean_text(p, "consent_purposes", 40, required=True) for p in consent_purposes]
            try:  # the ledger's purposes, checked here so a visitor never meets a misconfigured form
                parse_purposes([p for p in items if p])
            except ValidationError as exc:
                raise ValidationError({"consent_purposes": "; ".join(exc.errors.values())}) from None
            return [p for p in items if p]

        def slug_ok() -> str:
            if not isinstance(slug, str) or not _SLUG.match(slug):
                raise ValidationError({"slug": "use lower-case letters, digits and -, at most 80"})
            return slug

        collect_errors(
            put("slug", slug_ok),
            put("title", lambda: clean_text(title, "title", 200, required=True)),
            put("fields", lambda: _check_fields(fields)),
            put("consent_text", lambda: clean_text(consent_text, "consent_text", 2000)),
            put("consent_purposes", purposes),
            put("thank_you_url", lambda: check_url(thank_you_url, "thank_you_url") if thank_you_url else None),
            put("thank_you_message", lambda: clean_text(thank_you_message, "thank_you_message", 2000)),
            put("allowed_origins", origins),
            put("campaign", lambda: clean_text(campaign, "campaign", 255)),
            put("tags", lambda: [t for t in (clean_text(t, "tags", 120) for t in tags) if t]),
        )
        if consent_required and not values["consent_text"]:
            raise ValidationError({"consent_required": "a required consent box needs consent_text"})
        with self.crm.transaction(actor) as ctx:
            if ctx.first(WebForm, WebForm.slug == values["slug"]):
                raise Conflict(f"a form {values['slug']!r} exists")
            form = WebForm(consent_required=bool(consent_required), version=1, active=True,
                           created_at=ctx.now, updated_at=ctx.now, **values)  # fmt: skip
            ctx.session.add(form)
            ctx.session.flush()
            ctx.audit("form.create", "web_form", form.id, {"slug": form.slug})
        return form

    def list(self) -> list[WebForm]:
        """Every form, by slug."""
        with self.crm.transaction(readonly=True) as ctx:
            return list(ctx.session.scalars(select(WebForm).order_by(WebForm.slug)))

    def get(self, slug: str) -> WebForm:
        """An active form by slug; NotFound otherwise."""
        with self.crm.transaction(readonly=True) as ctx:
            form = ctx.first(WebForm, WebForm.slug == slug, WebForm.active.is_(True)) if _SLUG.match(slug) else None
            if form is None:
                raise NotFound(f"no form {slug!r}")
            return form  # type: ignore[no-any-return]

    def remembered(self, slug: str) -> WebForm | None:
        """The form :meth:`cached` remembers, if still fresh; never touches the database."""
        hit = self._cache.get(slug)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < FORM_CACHE_SECONDS else None

    def cached(self, slug: str) -> WebForm:
        """:meth:`get`, remembered for a few seconds (the web routes ask on every request)."""
        form = self.remembered(slug)
        if form is not None:
            return form
        now = time.monotonic()
        form = self.get(slug)
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[slug] = (now, form)
        return form

    def submit(self, slug: str, data: Mapping[str, Any], meta: SubmissionMeta | None = None) -> Submission:
        """Validate and capture one submission of form *slug* (see the module docstring).

        Raises :class:`~crmcore.errors.ValidationError` with a message per form
        field; nothing is written then.
        """
        meta = meta or SubmissionMeta()
        form = self.cached(slug)
        if data.get(HONEYPOT):
            return Submission(spam=True)
        cleaned = self._clean(form, data, meta)
        for attempt in range(RETRIES):
            try:
                return self._capture(form, cleaned, meta)
            except sa_exc.DBAPIError as exc:
                if attempt == RETRIES - 1 or not retryable(exc):
                    raise
                backoff(attempt)
        raise AssertionError("unreachable")

    def _clean(self, form: WebForm, data: Mapping[str, Any], meta: SubmissionMeta) -> _Cleaned:
        """Check the fields that need no database; the contact fields are checked by the capture."""
        cleaned = _Cleaned()
        errors = cleaned.errors
        for spec in form.fields:
            name = spec["name"]
            try:
                raw = _text_value(data.get(name))
            except ValidationError as exc:
                errors[name] = exc.errors["__all__"]
                continue
            if spec["type"] == "checkbox":
                value: Any = _truthy(raw)
                if spec["required"] and not value:
                    errors[name] = "must be ticked"
                    continue
            else:
                try:
                    value = clean_text(raw, name, spec["max_length"], required=spec["required"])
                except ValidationError as exc:
                    errors.update(exc.errors)
                    continue
                if value is not None and spec["type"] == "select" and value not in spec["choices"]:
                    errors[name] = f"choose one of {', '.join(spec['choices'])}"
                    continue
                if value is not None and spec["maps_to"] is None:  # mapped fields are checked by the capture
                    try:
                        _check_type(spec["type"], value, name)
                    except ValidationError as exc:
                        errors.update(exc.errors)
                        continue
            target = spec["maps_to"]
            if target is None:
                if value not in (None, ""):
                    cleaned.answers[name] = value
            elif target.startswith("custom."):
                cleaned.fields.setdefault("custom", {})[target[7:]] = value
                cleaned.by_target[target] = name
            else:
                cleaned.fields[target] = value
                cleaned.by_target[target] = name
        if form.tags:
            cleaned.fields["tags"] = list(form.tags)
        cleaned.consent = _truthy(data.get(CONSENT)) if form.consent_text else False
        if form.consent_required and not cleaned.consent:
            errors[CONSENT] = "please tick the consent box"
        cleaned.touch = self._touch(form, data, meta, errors)
        if not cleaned.fields.get("email") and not cleaned.fields.get("phone"):
            target_field = cleaned.by_target.get("email") or cleaned.by_target.get("phone") or "email"
            errors.setdefault(target_field, "give an email address or a phone number")
        return cleaned

    def _touch(
        self, form: WebForm, data: Mapping[str, Any], meta: SubmissionMeta, errors: dict[str, str]
    ) -> dict[str, Any]:
        """Touchpoint values from hidden fields (first) and the page's query string; bounded."""
        touch: dict[str, Any] = {"kind": TouchKind.FORM}
        for name in TRACKING_FIELDS:
            raw = data.get(name)
            if raw in (None, ""):
                raw = meta.query.get(name)
            if raw in (None, ""):
                continue
            try:
                text = clean_text(_text_value(raw), name, 2000 if name in ("referrer", "page_url") else 255)
            except ValidationError as exc:
                errors[name] = exc.errors.get(name) or exc.errors.get("__all__", "must be text")
                continue
            if name in ("gclid", "fbclid", "msclkid"):
                if text is None or not _CLICK_ID.match(text):
                    errors[name] = "is not a click id (visible ASCII, at most 255 characters)"
                elif "click_id" not in touch:
                    touch["click_id"], touch["click_id_kind"] = text, name
            elif name == "page_url":
                touch["url"] = text
            elif name == "subid":
                touch.setdefault("details", {})["subid"] = text
            else:
                touch[name] = text
        if "url" not in touch and meta.referrer and "/forms/" not in meta.referrer:
            # the page that posted (a browser's header, not the person's input: dropped, not refused)
            with contextlib.suppress(ValidationError):
                touch["url"] = clean_text(meta.referrer, "page_url", 2000)
        touch.setdefault("campaign", form.campaign or touch.get("utm_campaign"))
        touch["source"] = touch.get("utm_source")
        touch["medium"] = touch.get("utm_medium")
        return {k: v for k, v in touch.items() if v is not None}

    def _capture(self, form: WebForm, cleaned: _Cleaned, meta: SubmissionMeta) -> Submission:
        from crmcore.attribution import refresh_contact
        from crmcore.links import claim_touches
        from crmcore.services.fields import clean_contact
        from crmcore.services.leads import capture_in

        if cleaned.errors:  # report the contact fields' problems too, all at once
            with self.crm.transaction(readonly=True) as ctx:
                try:
                    clean_contact(ctx, cleaned.fields, creating=True)
                except ValidationError as exc:
                    cleaned.errors.update(cleaned.form_errors(exc.errors))
            raise ValidationError(cleaned.errors)
        with self.crm.transaction() as ctx:
            try:
                repeat = self._recent_submission(ctx, form, cleaned.fields)
                if repeat is not None:
                    return Submission(contact_id=repeat.contact_id, touchpoint_id=repeat.id, duplicate=True)
                details = {**cleaned.touch.get("details", {}), "form": form.slug, "form_version": form.version,
                           "fields": cleaned.answers}  # fmt: skip
                touch = {**cleaned.touch, "details": details}
                contact = capture_in(ctx, cleaned.fields, touch)
            except ValidationError as exc:  # a contact field, or a plugin's veto: named by form field
                raise ValidationError(cleaned.form_errors(exc.errors)) from None
            touchpoint_id = ctx.cache.get("last_touch_id")
            if meta.touch_ids and claim_touches(ctx, contact, list(meta.touch_ids)):
                refresh_contact(ctx, contact)
            if cleaned.consent:
                proof = {
                    "at": ctx.now.isoformat(), "ip": meta.ip, "source": f"form:{form.slug}",
                    "form_version": form.version, "text": form.consent_text,
                }  # fmt: skip
                ctx.call("crm_form_consent_given", contact_id=contact.id, form_slug=form.slug,
                         purposes=list(form.consent_purposes), proof=proof)  # fmt: skip
            return Submission(contact_id=contact.id, touchpoint_id=touchpoint_id, created=contact.created)

    def _recent_submission(self, ctx: HookContext, form: WebForm, fields: Mapping[str, Any]) -> Touchpoint | None:
        window = self.crm.settings.form_dedupe_seconds
        if window <= 0:
            return None
        email = fields.get("email")
        if not email:
            return None
        from crmcore.validation import fast_normalize_email

        _, normalized = fast_normalize_email(str(email))
        contact_id = ctx.scalar(select(Contact.id).where(Contact.email_normalized == normalized))
        if contact_id is None:
            return None
        recent = ctx.session.scalars(
            select(Touchpoint).where(
                Touchpoint.contact_id == contact_id,
                Touchpoint.kind == TouchKind.FORM,
                Touchpoint.occurred_at >= ctx.now - timedelta(seconds=window),
            )
        ).all()
        return next((t for t in recent if (t.details or {}).get("form") == form.slug), None)

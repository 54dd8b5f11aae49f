"""Attribution: first and last touch per contact and per conversion; affiliates and their commission.

A *creditable* touch is one that brought the person: an ad, affiliate or
tracked-link click, an email click, a form. Each contact keeps its first and
last one (``contact_attribution``); each conversion keeps the contact's first
and last creditable touch before it (``conversion_attribution``). A conversion
is credited to an affiliate when it names one, or when its last touch came from
one within ``settings.affiliate_window_days``; the commission comes from the
hook ``crm_affiliate_commission`` and, where the affiliate has a postback URL,
a server-to-server postback is queued in the outbox.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import attrs
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.models import Affiliate, ContactAttribution, ConversionAttribution, TouchKind, Touchpoint
from crmcore.services.base import Service
from crmcore.validation import clean_text, currency_code

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.models import Contact
    from crmcore.registry import JobCall

#: Touch kinds that get credit for bringing a person.
CREDITABLE_KINDS = frozenset(
    {TouchKind.AD_CLICK, TouchKind.AFFILIATE_CLICK, TouchKind.LINK_CLICK, TouchKind.EMAIL_CLICK, TouchKind.FORM}
)
#: Outbox handler that sends an affiliate's postback.
POSTBACK_HANDLER = "core.affiliate_postback"
POSTBACK_PLACEHOLDERS = ("click_id", "subid", "value", "commission", "currency", "conversion_id", "order_id")


def opening_attribution(
    ctx: HookContext, contact: Contact | None, touch: Touchpoint
) -> tuple[type[ContactAttribution], dict[str, Any]] | None:
    """The attribution row *touch* opens, to insert with it: a new contact's first creditable touch.

    A contact created in this unit of work has no row yet, so its first
    creditable touch is both its first and last (the touch's key is
    :data:`~crmcore.context.NEW_KEY`); ``None`` for any other touch, whose
    attribution :func:`touch_recorded` keeps. Call :func:`attribution_opened` once written.
    """
    if (
        contact is None
        or touch.kind not in CREDITABLE_KINDS
        or contact.id not in ctx.cache.get("fresh_touches", {})
        or contact.id in ctx.cache.get("attribution_seen", {})
        or contact.id in ctx.cache.get("attribution_opened", {})
    ):
        return None
    from crmcore.context import NEW_KEY

    return ContactAttribution, {"contact_id": contact.id, "first_touch_id": NEW_KEY, "first_at": touch.occurred_at,
                                "last_touch_id": NEW_KEY, "last_at": touch.occurred_at}  # fmt: skip


def attribution_opened(ctx: HookContext, touch: Touchpoint) -> None:
    """Note that the row of :func:`opening_attribution` was written with *touch* (read back only if needed)."""
    ctx.cache.setdefault("attribution_opened", {})[touch.contact_id] = touch.id


def touch_recorded(ctx: HookContext, contact: Contact | None, touch: Touchpoint) -> None:
    """Keep attribution current after *touch* was flushed (called by ``record_touch_in``)."""
    if contact is not None and touch.kind in CREDITABLE_KINDS:
        opened: dict[int, int] = ctx.cache.get("attribution_opened", {})
        if opened.get(contact.id) == touch.id:  # written with the touch (opening_attribution)
            return
        seen: dict[int, ContactAttribution] = ctx.cache.setdefault("attribution_seen", {})
        row = seen.get(contact.id)
        if row is None and (contact.id in opened or contact.id not in ctx.cache.get("fresh_touches", {})):
            row = ctx.session.get(ContactAttribution, contact.id)  # a new contact has none, unless opened
        if row is None:
            row = ContactAttribution(
                contact_id=contact.id, first_touch_id=touch.id, first_at=touch.occurred_at,
                last_touch_id=touch.id, last_at=touch.occurred_at,
            )  # fmt: skip
            ctx.persist(row)
        else:
            if touch.occurred_at < row.first_at:
                row.first_touch_id, row.first_at = touch.id, touch.occurred_at
            if touch.occurred_at >= row.last_at:
                row.last_touch_id, row.last_at = touch.id, touch.occurred_at
        seen[contact.id] = row
    if touch.kind == TouchKind.CONVERSION:
        _attribute_conversion(ctx, contact, touch)


def refresh_contact(ctx: HookContext, contact: Contact) -> ContactAttribution | None:
    """Recompute a contact's first and last touch from its touchpoints (after claiming clicks)."""
    query = select(Touchpoint.id, Touchpoint.occurred_at).where(
        Touchpoint.contact_id == contact.id, Touchpoint.kind.in_(sorted(CREDITABLE_KINDS))
    )
    first = ctx.session.execute(query.order_by(Touchpoint.occurred_at, Touchpoint.id).limit(1)).first()
    last = ctx.session.execute(query.order_by(Touchpoint.occurred_at.desc(), Touchpoint.id.desc()).limit(1)).first()
    ctx.session.flush()
    row = ctx.session.get(ContactAttribution, contact.id)
    if first is None or last is None:
        return row
    if row is None:
        row = ContactAttribution(contact_id=contact.id)
        ctx.session.add(row)
    row.first_touch_id, row.first_at = first
    row.last_touch_id, row.last_at = last
    ctx.cache.setdefault("attribution_seen", {})[contact.id] = row
    return row


def _creditable_before(ctx: HookContext, contact_id: int, touch: Touchpoint, *, last: bool) -> Touchpoint | None:
    order = (Touchpoint.occurred_at.desc(), Touchpoint.id.desc()) if last else (Touchpoint.occurred_at, Touchpoint.id)
    return ctx.session.scalars(
        select(Touchpoint)
        .where(
            Touchpoint.contact_id == contact_id,
            Touchpoint.kind.in_(sorted(CREDITABLE_KINDS)),
            Touchpoint.occurred_at <= touch.occurred_at,
            Touchpoint.id != touch.id,
        )
        .order_by(*order)
        .limit(1)
    ).first()


def _attribute_conversion(ctx: HookContext, contact: Contact | None, touch: Touchpoint) -> None:
    first = last = None
    if contact is not None:
        first = _creditable_before(ctx, contact.id, touch, last=False)
        last = _creditable_before(ctx, contact.id, touch, last=True)
    code = touch.affiliate
    affiliate_touch = None
    if code is None and contact is not None:  # the last affiliate click within the window wins
        window = timedelta(days=ctx.crm.settings.affiliate_window_days)
        affiliate_touch = ctx.session.scalars(
            select(Touchpoint)
            .where(
                Touchpoint.contact_id == contact.id,
                Touchpoint.kind.in_(sorted(CREDITABLE_KINDS)),
                Touchpoint.affiliate.is_not(None),
                Touchpoint.occurred_at <= touch.occurred_at,
                Touchpoint.occurred_at >= touch.occurred_at - window,
                Touchpoint.id != touch.id,
            )
            .order_by(Touchpoint.occurred_at.desc(), Touchpoint.id.desc())
            .limit(1)
        ).first()
        code = affiliate_touch.affiliate if affiliate_touch else None
    affiliate = ctx.first(Affiliate, Affiliate.code == code, Affiliate.active.is_(True)) if code else None
    commission = None
    if affiliate is not None:
        commission = ctx.call("crm_affiliate_commission", affiliate=affiliate, conversion=touch)
    row = ConversionAttribution(
        touchpoint_id=touch.id, contact_id=contact.id if contact else None, occurred_at=touch.occurred_at,
        value=touch.value, currency=touch.currency,
        first_touch_id=first.id if first else None, last_touch_id=last.id if last else None,
        affiliate_id=affiliate.id if affiliate else None, commission=commission,
        details={
            **({"unknown_affiliate": code} if code and affiliate is None else {}),
            **({"affiliate_touch_id": affiliate_touch.id} if affiliate_touch else {}),
        },
    )  # fmt: skip
    ctx.session.add(row)
    ctx.session.flush()
    if affiliate is not None and affiliate.postback_url:
        ctx.enqueue(POSTBACK_HANDLER, {"touchpoint_id": touch.id}, key=f"affiliate-postback:{touch.id}")
    ctx.call("crm_conversion_attributed", attribution=row)


def default_commission(affiliate: Affiliate, conversion: Touchpoint) -> Decimal | None:
    """The affiliate's rule: percent of the value plus the flat amount (``None`` without a rule)."""
    if affiliate.commission_percent is None and affiliate.commission_flat is None:
        return None
    amount = Decimal(0)
    if affiliate.commission_percent is not None and conversion.value is not None:
        amount += conversion.value * affiliate.commission_percent / 100
    if affiliate.commission_flat is not None:
        amount += affiliate.commission_flat
    return amount.quantize(Decimal("0.01"))


def postback_url(template: str, values: dict[str, Any]) -> str:
    """Fill the ``{placeholders}`` of an affiliate's postback URL, each value URL-encoded."""
    url = template
    for name in POSTBACK_PLACEHOLDERS:
        value = values.get(name)
        url = url.replace("{" + name + "}", quote("" if value is None else str(value), safe=""))
    return url


def _cents(amount: Decimal | None) -> str | None:
    return None if amount is None else f"{amount:.2f}"


def send_postback(call: JobCall) -> None:
    """Outbox handler: GET the affiliate's postback URL; a non-2xx answer is retried."""
    with call.crm.transaction(readonly=True) as ctx:
        row = ctx.session.get(ConversionAttribution, call.payload["touchpoint_id"])
        if row is None or row.affiliate_id is None:
            return
        affiliate = ctx.session.get(Affiliate, row.affiliate_id)
        conversion = ctx.session.get(Touchpoint, row.touchpoint_id)
        if affiliate is None or conversion is None or not affiliate.postback_url:
            return
        click_id = (row.details or {}).get("affiliate_touch_id") or row.last_touch_id
        click = ctx.session.get(Touchpoint, click_id) if click_id else None
        url = postback_url(
            affiliate.postback_url,
            {
                "click_id": click.click_id if click else None,
                "subid": (click.details or {}).get("subid") if click else None,
                "value": _cents(conversion.value), "commission": _cents(row.commission),
                "currency": conversion.currency, "conversion_id": conversion.id,
                "order_id": (conversion.external_id or "").removeprefix("order:") or None,
            },
        )  # fmt: skip
    request = urllib.request.Request(url, headers={"User-Agent": "crmcore-postback/0.1"})
    with urllib.request.urlopen(request, timeout=10) as answer:  # http(s) only: checked when saved
        if not 200 <= answer.status < 300:
            raise RuntimeError(f"postback answered {answer.status}")


class AffiliateService(Service):
    """``crm.affiliates``: partners, their commission rule and postback URL."""

    def add(
        self,
        code: str,
        *,
        name: str,
        commission_percent: Any = None,
        commission_flat: Any = None,
        currency: str | None = None,
        postback_url: str | None = None,
        actor: Any = None,
    ) -> Affiliate:
        """Add an affiliate; *code* is the value carried as ``affiliate`` on links and touchpoints."""
        from crmcore.links import check_url
        from crmcore.validation import collect_errors, positive_amount

        values: dict[str, Any] = {}

        def put(key: str, fn: Any) -> Any:
            return lambda: values.__setitem__(key, fn())

        collect_errors(
            put("code", lambda: clean_text(code, "code", 255, required=True)),
            put("name", lambda: clean_text(name, "name", 200, required=True)),
            put("commission_percent", lambda: None if commission_percent in (None, "")
                else positive_amount(commission_percent, "commission_percent")),
            put("commission_flat", lambda: None if commission_flat in (None, "")
                else positive_amount(commission_flat, "commission_flat")),
            put("currency", lambda: currency_code(currency, self.crm.settings.currency)),
            put("postback_url", lambda: check_url(postback_url, "postback_url") if postback_url else None),
        )  # fmt: skip
        if values["commission_percent"] is not None and values["commission_percent"] > 100:
            raise ValidationError({"commission_percent": "must be at most 100"})
        with self.crm.transaction(actor) as ctx:
            if ctx.first(Affiliate, Affiliate.code == values["code"]):
                raise Conflict(f"an affiliate with code {values['code']!r} exists")
            affiliate = Affiliate(active=True, created_at=ctx.now, **values)
            ctx.session.add(affiliate)
            ctx.session.flush()
            ctx.audit("affiliate.add", "affiliate", affiliate.id, {"code": affiliate.code})
        return affiliate

    def get(self, code: str) -> Affiliate:
        """One affiliate by code."""
        with self.crm.transaction(readonly=True) as ctx:
            affiliate = ctx.first(Affiliate, Affiliate.code == code)
            if affiliate is None:
                raise NotFound(f"no affiliate {code!r}")
            return affiliate  # type: ignore[no-any-return]

    def conversions(self, contact_id: int | None = None) -> list[ConversionAttribution]:
        """Attributed conversions (of one contact, or all), newest first."""
        with self.crm.transaction(readonly=True) as ctx:
            query = select(ConversionAttribution).order_by(ConversionAttribution.occurred_at.desc())
            if contact_id is not None:
                query = query.where(ConversionAttribution.contact_id == contact_id)
            return list(ctx.session.scalars(query))

    def summary(self) -> list[dict[str, Any]]:
        """Every affiliate with its attributed conversions and total commission."""
        from sqlalchemy import func

        with self.crm.transaction(readonly=True) as ctx:
            totals = {
                affiliate_id: (int(count), commission)
                for affiliate_id, count, commission in ctx.session.execute(
                    select(
                        ConversionAttribution.affiliate_id,
                        func.count(ConversionAttribution.touchpoint_id),
                        func.sum(ConversionAttribution.commission),
                    ).group_by(ConversionAttribution.affiliate_id)
                )
            }
            rows = []
            for affiliate in ctx.session.scalars(select(Affiliate).order_by(Affiliate.code)):
                count, commission = totals.get(affiliate.id, (0, None))
                rows.append({
                    "code": affiliate.code, "name": affiliate.name,
                    "commission_percent": affiliate.commission_percent, "commission_flat": affiliate.commission_flat,
                    "currency": affiliate.currency, "postback_url": affiliate.postback_url,
                    "conversions": count, "commission": Decimal(commission or 0).quantize(Decimal("0.01")),
                })  # fmt: skip
            return rows

    def of_contact(self, contact_id: int) -> ContactAttribution | None:
        """A contact's first and last creditable touch."""
        with self.crm.transaction(readonly=True) as ctx:
            return ctx.session.get(ContactAttribution, contact_id)

    def list(self) -> list[Affiliate]:
        """Every affiliate, by code."""
        with self.crm.transaction(readonly=True) as ctx:
            return list(ctx.session.scalars(select(Affiliate).order_by(Affiliate.code)))


#: How far a signed conversion's timestamp may be from now (replays are refused beyond it).
SIGNATURE_TOLERANCE_SECONDS = 300
#: Fields ``POST /conversions`` accepts besides the contact's email or id.
CONVERSION_FIELDS = frozenset(
    {"order_id", "email", "contact_id", "value", "currency", "occurred_at", "affiliate", "campaign", "ad",
     "source", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid", "fbclid",
     "msclkid", "first_name", "last_name", "phone"}
)  # fmt: skip


def sign_conversion(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-CRM-Signature`` value a host shop sends with ``POST /conversions``.

    ``sha256=`` and the hex HMAC-SHA256 of ``b"<timestamp>." + body`` under the
    shared ``conversion_secret``.
    """
    import hashlib
    import hmac

    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@attrs.frozen
class ConversionResult:
    """What ``crm.conversions.record`` did: the conversion touchpoint, and whether it was a repeat."""

    touchpoint_id: int
    contact_id: int | None
    duplicate: bool


class ConversionService(Service):
    """``crm.conversions``: conversions a host shop posts (signed), with attribution."""

    def verify(self, timestamp: str | None, signature: str | None, body: bytes) -> None:
        """Check a posted conversion's signature and freshness; PermissionDenied otherwise."""
        import hmac

        from crmcore.errors import PermissionDenied

        secret = self.crm.settings.conversion_secret
        if not secret:
            raise NotFound("conversions are not enabled (set conversion_secret)")
        if not timestamp or not timestamp.isdigit() or not signature:
            raise PermissionDenied("missing X-CRM-Timestamp or X-CRM-Signature")
        if abs(self.crm.clock.now().timestamp() - int(timestamp)) > SIGNATURE_TOLERANCE_SECONDS:
            raise PermissionDenied("the signature's timestamp is too old or in the future")
        if not hmac.compare_digest(sign_conversion(secret, int(timestamp), body), signature.strip()):
            raise PermissionDenied("bad signature")

    def record(self, data: Mapping[str, Any], *, actor: Any = None) -> ConversionResult:
        """Record a conversion for a contact (by ``contact_id`` or ``email``; a new email becomes a lead).

        ``order_id`` is required and unique: posting the same order again is a
        repeat (``duplicate=True``), never a second conversion.
        """
        from crmcore.services.base import get_contact
        from crmcore.services.leads import capture_in, clean_touch, record_touch_in

        if not isinstance(data, Mapping):
            raise ValidationError({"__all__": "a conversion is a mapping of fields"})
        errors: dict[str, str] = dict.fromkeys(sorted(set(data) - CONVERSION_FIELDS), "unknown field")
        order_id = data.get("order_id")
        if not isinstance(order_id, str | int) or isinstance(order_id, bool) or not str(order_id).strip():
            errors["order_id"] = "is required"
        if data.get("email") in (None, "") and data.get("contact_id") in (None, ""):
            errors["email"] = "give the buyer's email or contact_id"
        if errors:
            raise ValidationError(errors)
        touch: dict[str, Any] = {"kind": TouchKind.CONVERSION, "external_id": f"order:{str(order_id).strip()}"}
        for name in ("value", "currency", "occurred_at", "affiliate", "campaign", "ad", "source",
                     "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"):  # fmt: skip
            if data.get(name) not in (None, ""):
                touch[name] = data[name] if name in ("value",) else str(data[name])
        for name in ("gclid", "fbclid", "msclkid"):
            if data.get(name) and "click_id" not in touch:
                touch["click_id"], touch["click_id_kind"] = str(data[name]), name
        from crmcore.forms import RETRIES, backoff, retryable

        for attempt in range(RETRIES):
            try:
                with self.crm.transaction(actor) as ctx:
                    values = clean_touch(ctx, touch)
                    existing = ctx.first(Touchpoint, Touchpoint.external_id == values["external_id"])
                    if existing is not None:
                        return ConversionResult(existing.id, existing.contact_id, True)
                    if data.get("contact_id") not in (None, ""):
                        contact = get_contact(
                            ctx,
                            int(str(data["contact_id"]))
                            if str(data["contact_id"]).isdigit()
                            else str(data["contact_id"]),
                        )
                        if contact.erased_at is not None:
                            raise ValidationError({"contact_id": "this contact was erased"})
                        recorded = record_touch_in(ctx, contact, values)
                    else:
                        fields = {k: data[k] for k in ("email", "first_name", "last_name", "phone") if data.get(k)}
                        contact = capture_in(ctx, fields, touch)
                        recorded_id = ctx.cache["last_touch_id"]
                        return ConversionResult(recorded_id, contact.id, False)
                    return ConversionResult(recorded.id, contact.id, False)
            except sa_exc.DBAPIError as exc:  # the same order (or buyer) posted twice at once: the retry sees it
                if attempt == RETRIES - 1 or not retryable(exc):
                    raise
                backoff(attempt)
        raise AssertionError("unreachable")

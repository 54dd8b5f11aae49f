"""Tracked links: short links ``/r/<code>`` and signed links ``/r/s/<token>`` for known contacts.

A short link carries its campaign, ad and affiliate; every click records a
touchpoint and redirects to the link's URL. A signed link (in an email) carries
the destination, the contact and the campaign inside a token signed by
``crm.signer`` (key rotation, expiry): a tampered or expired token never
redirects anywhere and is counted as invalid (audit action ``link.invalid``)::

    url = signed_redirect_url(crm, "https://shop.example.com/spring", contact_id=42, campaign="spring")
    crm.links.create("https://shop.example.com/", campaign="spring", affiliate="blog-42")
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
from sqlalchemy import func, select

from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.models import Contact, TouchKind, Touchpoint, TrackedLink
from crmcore.services.base import Service
from crmcore.signing import InvalidToken
from crmcore.validation import clean_text

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM

#: The signer purpose (salt) of signed redirect tokens.
SIGNED_LINK_PURPOSE = "redirect"
#: Longest destination URL a link may carry.
MAX_URL_LENGTH = 2000
#: Largest ``details`` (as JSON) a signed link may carry.
MAX_DETAILS_LENGTH = 1000
#: How long a short link's destination is remembered (a deactivated link stops within this time).
LINK_CACHE_SECONDS = 5.0
_CODE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_CLICK_ID = re.compile(r"^[\x21-\x7e]{1,255}$")
#: Query parameters of a click that are kept on its touchpoint.
CLICK_PARAMS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
CLICK_ID_PARAMS = ("gclid", "fbclid", "msclkid")


def check_url(url: Any, field: str = "url") -> str:
    """An absolute ``http(s)`` URL without whitespace, at most 2,000 characters."""
    text = clean_text(url, field, MAX_URL_LENGTH, required=True)
    assert text is not None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in text):
        raise ValidationError({field: f"{text[:80]!r} is not an absolute http(s) URL"})
    return text


def signed_redirect_url(
    crm: CRM,
    url: str,
    *,
    contact_id: int,
    campaign: str | None = None,
    source: str = "email",
    details: Mapping[str, Any] | None = None,
) -> str:
    """An absolute URL under ``settings.base_url`` that records a click by *contact_id* and goes to *url*.

    The token is signed by ``crm.signer`` (rotated keys still verify) and
    expires after ``settings.signed_link_max_age_days``. *details* (JSON-able,
    small) is kept in the click touchpoint's details.
    """
    destination = check_url(url)
    payload: dict[str, Any] = {"u": destination, "c": int(contact_id)}
    if campaign:
        payload["k"] = clean_text(campaign, "campaign", 255)
    if source:
        payload["s"] = clean_text(source, "source", 255)
    if details:
        text = json.dumps(dict(details), sort_keys=True, default=str)
        if len(text) > MAX_DETAILS_LENGTH:
            raise ValidationError({"details": f"is larger than {MAX_DETAILS_LENGTH} characters as JSON"})
        payload["d"] = json.loads(text)
    token = crm.signer.dumps(SIGNED_LINK_PURPOSE, payload)
    return f"{crm.settings.base_url.rstrip('/')}/r/s/{token}"


@attrs.frozen
class ClickInfo:
    """What the web layer knows about a click: query values, referrer, client address."""

    params: Mapping[str, str] = attrs.field(factory=dict)
    referrer: str | None = None
    ip: str | None = None
    user_agent: str | None = None


@attrs.frozen
class Redirect:
    """Where a click goes, and the touchpoint it recorded (``None`` when not tracked)."""

    url: str
    touchpoint_id: int | None
    anonymous: bool


def click_values(info: ClickInfo) -> tuple[dict[str, Any], dict[str, Any]]:
    """Touchpoint fields from a click's query string and referrer; bad values are dropped.

    A click must always reach its destination, so untrusted values that do not
    fit (a 5,000-character gclid, control characters) are left out and named
    in ``details["dropped"]`` rather than refused.
    """
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    dropped: list[str] = []
    for name in CLICK_PARAMS:
        raw = info.params.get(name)
        if raw:
            try:
                values[name] = clean_text(raw, name, 255)
            except ValidationError:
                dropped.append(name)
    for name in CLICK_ID_PARAMS:
        raw = info.params.get(name)
        if raw:
            if _CLICK_ID.match(raw) and "click_id" not in values:
                values["click_id"], values["click_id_kind"] = raw, name
            else:
                dropped.append(name)
    subid = info.params.get("subid")
    if subid:  # an affiliate network's own click id, echoed in its postback
        if _CLICK_ID.match(subid):
            extra["subid"] = subid
        else:
            dropped.append("subid")
    if info.referrer:
        try:
            values["referrer"] = clean_text(info.referrer, "referrer", 2000)
        except ValidationError:
            dropped.append("referrer")
    if dropped:
        extra["dropped"] = dropped
    return values, extra


@attrs.frozen(kw_only=True)
class _LinkFacts:
    id: int
    code: str
    url: str
    source: str | None
    medium: str | None
    campaign: str | None
    ad: str | None
    affiliate: str | None


class LinkService(Service):
    """``crm.links``: create and list short links, follow short and signed links."""

    def __init__(self, crm: CRM) -> None:
        super().__init__(crm)
        self._cache: dict[str, tuple[float, _LinkFacts | None]] = {}

    def create(
        self,
        url: str,
        *,
        code: str | None = None,
        campaign: str | None = None,
        ad: str | None = None,
        affiliate: str | None = None,
        source: str | None = None,
        medium: str | None = None,
        actor: Any = None,
    ) -> TrackedLink:
        """Create a short link to *url*; *code* defaults to 8 random URL-safe characters."""
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        for name, value in (("campaign", campaign), ("ad", ad), ("affiliate", affiliate),
                            ("source", source), ("medium", medium)):  # fmt: skip
            try:
                values[name] = clean_text(value, name, 255)
            except ValidationError as exc:
                errors.update(exc.errors)
        try:
            values["url"] = check_url(url)
        except ValidationError as exc:
            errors.update(exc.errors)
        if code is not None and not _CODE.match(code):
            errors["code"] = "use 1-40 letters, digits, - or _"
        if errors:
            raise ValidationError(errors)
        with self.crm.transaction(actor) as ctx:
            if code is not None and ctx.first(TrackedLink, TrackedLink.code == code):
                raise Conflict(f"a link with code {code!r} exists")
            link = TrackedLink(code=code or secrets.token_urlsafe(6), active=True, created_at=ctx.now, **values)
            ctx.session.add(link)
            ctx.session.flush()
            ctx.audit("link.create", "tracked_link", link.id, {"code": link.code, "url": link.url})
        return link

    def list(self) -> list[dict[str, Any]]:
        """Every short link with its click count, newest first."""
        with self.crm.transaction(readonly=True) as ctx:
            clicks = (
                select(func.coalesce(func.sum(Touchpoint.quantity), 0))
                .where(Touchpoint.link_id == TrackedLink.id)
                .correlate(TrackedLink)
                .scalar_subquery()
            )
            rows = ctx.session.execute(select(TrackedLink, clicks).order_by(TrackedLink.id.desc())).all()
            return [
                {
                    "id": link.id, "code": link.code, "url": link.url, "campaign": link.campaign, "ad": link.ad,
                    "affiliate": link.affiliate, "source": link.source, "active": link.active,
                    "clicks": int(count), "short_url": self.short_url(link.code),
                }
                for link, count in rows
            ]  # fmt: skip

    def short_url(self, code: str) -> str:
        """The absolute short URL of *code*."""
        return f"{self.crm.settings.base_url.rstrip('/')}/r/{code}"

    def _link(self, code: str) -> _LinkFacts | None:
        """The active link *code*, remembered for a few seconds (every click asks)."""
        now = time.monotonic()
        hit = self._cache.get(code)
        if hit is not None and now - hit[0] < LINK_CACHE_SECONDS:
            return hit[1]
        with self.crm.transaction(readonly=True) as ctx:
            link = ctx.first(TrackedLink, TrackedLink.code == code, TrackedLink.active.is_(True))
            facts = None if link is None else _LinkFacts(
                id=link.id, code=link.code, url=link.url, source=link.source, medium=link.medium,
                campaign=link.campaign, ad=link.ad, affiliate=link.affiliate,
            )  # fmt: skip
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[code] = (now, facts)
        return facts

    def destination(self, code: str) -> str:
        """Where short link *code* goes, without recording a click (``HEAD`` requests, link previews)."""
        link = self._link(code) if _CODE.match(code) else None
        if link is None:
            raise NotFound("this link does not exist")
        return link.url

    def signed_destination(self, token: str) -> str:
        """Where a signed link goes, without recording or counting anything; InvalidToken otherwise."""
        max_age = self.crm.settings.signed_link_max_age_days * 86400
        payload = self.crm.signer.loads(SIGNED_LINK_PURPOSE, token, max_age=max_age)
        try:
            return check_url(payload["u"])
        except (KeyError, TypeError, ValidationError):
            raise InvalidToken("invalid link") from None

    def follow(self, code: str, info: ClickInfo) -> Redirect:
        """Record a click on short link *code* and return where it goes; NotFound for an unknown code."""
        from crmcore.services.leads import record_touch_in

        link = self._link(code) if _CODE.match(code) else None
        if link is None:
            raise NotFound("this link does not exist")
        with self.crm.transaction() as ctx:
            values, details = click_values(info)
            kind = (
                TouchKind.AFFILIATE_CLICK if link.affiliate else TouchKind.AD_CLICK if link.ad else TouchKind.LINK_CLICK
            )
            values.update(
                kind=kind, source=link.source or values.get("utm_source"), medium=link.medium,
                campaign=link.campaign or values.get("utm_campaign"), ad=link.ad, affiliate=link.affiliate,
                url=link.url, occurred_at=ctx.now, link_id=link.id,
                details={**details, "link": link.code},
            )  # fmt: skip
            touch = record_touch_in(ctx, None, values)
            return Redirect(url=link.url, touchpoint_id=touch.id, anonymous=True)

    def follow_signed(self, token: str, info: ClickInfo) -> Redirect:
        """Verify a signed link, record the contact's click, return where it goes.

        Raises :class:`~crmcore.signing.InvalidToken` (``expired`` set for an
        old one) after counting it as invalid; nothing else is written then.
        """
        from crmcore.services.leads import record_touch_in

        max_age = self.crm.settings.signed_link_max_age_days * 86400
        try:
            payload = self.crm.signer.loads(SIGNED_LINK_PURPOSE, token, max_age=max_age)
            url = check_url(payload["u"])
            contact_id = int(payload["c"])
        except InvalidToken as exc:
            self._count_invalid("expired" if exc.expired else "invalid", info)
            raise
        except (KeyError, TypeError, ValueError, ValidationError):
            self._count_invalid("invalid", info)
            raise InvalidToken("invalid link") from None
        with self.crm.transaction() as ctx:
            contact = ctx.session.get(Contact, contact_id)
            tracked = contact is not None and contact.erased_at is None and not contact.do_not_track
            values, details = click_values(info)
            source = payload.get("s")
            values.update(
                kind=TouchKind.EMAIL_CLICK if source == "email" else TouchKind.LINK_CLICK,
                source=source, campaign=payload.get("k"), url=url, occurred_at=ctx.now,
                details={**details, **(payload.get("d") or {})},
            )  # fmt: skip
            if not tracked:  # counted for the campaign, but not tied to the person
                values.pop("referrer", None)
            touch = record_touch_in(ctx, contact if tracked else None, values)
            return Redirect(url=url, touchpoint_id=touch.id, anonymous=not tracked)

    def invalid_count(self) -> int:
        """How many tampered or expired links were refused."""
        from crmcore.models import AuditEntry

        with self.crm.transaction(readonly=True) as ctx:
            return int(ctx.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "link.invalid")) or 0)

    def _count_invalid(self, reason: str, info: ClickInfo) -> None:
        with self.crm.transaction() as ctx:
            ctx.audit("link.invalid", "link", None, {"reason": reason, "ip": info.ip})


def claim_touches(ctx: HookContext, contact: Contact, touch_ids: list[int]) -> int:
    """Give anonymous touchpoints (clicks before a form) to *contact*; returns how many."""
    if not touch_ids:
        return 0
    touches = ctx.session.scalars(
        select(Touchpoint).where(Touchpoint.id.in_(touch_ids[-10:]), Touchpoint.contact_id.is_(None))
    ).all()
    from crmcore.rollup_marks import touch_written

    for touch in touches:
        touch.contact_id = contact.id
        touch_written(ctx, touch)  # an older click may now be credited for the contact's past conversions
    return len(touches)

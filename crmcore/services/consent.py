"""The consent ledger: per purpose and channel, with proof, history and double opt-in.

``crm.consent`` records what a person agreed to (marketing email, surveys by
SMS, web tracking, ...), when, where (source, IP, form version) and in which
words, and keeps every change: a withdrawal never deletes the grant before it.

Two flags on the contact stay apart from the ledger: ``do_not_contact`` (no
marketing or survey message on any channel, whatever the ledger says) and
``do_not_track`` (no tracking, whatever the ledger says). Transactional
messages (an invoice, a ticket reply, this module's own confirmation mail)
need no consent and are never checked against the ledger.

Web forms ask for consent through double opt-in: the form's proof is stored
as a *pending* request and a confirmation mail goes out with a signed link
bound to that request and that address; only its click grants the consent.
"""

from __future__ import annotations

import builtins
import hmac
import ipaddress
import re
import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select

from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.models import Consent, ConsentEvent, ConsentRequest, Contact
from crmcore.services.base import ContactRef, Service, get_contact
from crmcore.signing import InvalidToken
from crmcore.validation import clean_text

if TYPE_CHECKING:
    from crmcore.context import HookContext

#: What a person can consent to.
PURPOSES = ("marketing", "surveys", "tracking", "profiling", "third_party")
#: How they may be reached (``web`` for tracking on the website).
CHANNELS = ("email", "sms", "phone", "post", "web")
#: Purposes that the ``do_not_track`` flag overrides; the others follow ``do_not_contact``.
TRACKING_PURPOSES = frozenset({"tracking", "profiling"})
#: Signing purpose of double opt-in links.
CONFIRM_PURPOSE = "consent-confirm"
#: How long a double opt-in link stays valid.
CONFIRM_MAX_AGE_SECONDS = 14 * 24 * 3600

GRANTED, WITHDRAWN, PENDING = "granted", "withdrawn", "pending"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_purpose(purpose: Any, channel: Any) -> tuple[str, str]:
    """Validate a purpose and channel; the error lists the valid ones."""
    errors = {}
    if purpose not in PURPOSES:
        errors["purpose"] = f"unknown purpose {purpose!r}; purposes: {', '.join(PURPOSES)}"
    if channel not in CHANNELS:
        errors["channel"] = f"unknown channel {channel!r}; channels: {', '.join(CHANNELS)}"
    if errors:
        raise ValidationError(errors)
    return str(purpose), str(channel)


def parse_purposes(purposes: Any) -> list[tuple[str, str]]:
    """``["marketing", "surveys:sms"]`` as ``[("marketing", "email"), ("surveys", "sms")]``.

    A bare purpose means the email channel (what a web form collects).
    """
    if isinstance(purposes, str) or not purposes:
        raise ValidationError({"purposes": "give a list of purposes such as ['marketing', 'surveys:sms']"})
    pairs: list[tuple[str, str]] = []
    for item in purposes:
        if isinstance(item, list | tuple) and len(item) == 2:
            pair = check_purpose(item[0], item[1])
        else:
            purpose, _, channel = str(item).partition(":")
            pair = check_purpose(purpose.strip(), channel.strip() or "email")
        if pair not in pairs:
            pairs.append(pair)
    return pairs


def _ip(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise ValidationError({"ip": f"{value!r} is not an IP address"}) from None


def _wording(value: Any) -> str | None:
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    if _CONTROL.search(text):
        raise ValidationError({"text": "contains control characters"})
    if len(text) > 10_000:
        raise ValidationError({"text": "is longer than 10000 characters"})
    return text


def record_in(
    ctx: HookContext,
    contact: Contact,
    purpose: str,
    channel: str,
    action: str,
    *,
    source: Any,
    ip: Any = None,
    form_version: Any = None,
    text: Any = None,
) -> Consent:
    """Write one ledger entry and move the current state, inside *ctx*'s transaction."""
    purpose, channel = check_purpose(purpose, channel)
    source_text = clean_text(source, "source", 255, required=True)
    assert source_text is not None
    proof = {"ip": _ip(ip), "form_version": clean_text(form_version, "form_version", 80), "text": _wording(text)}
    if contact.erased_at is not None:
        raise Conflict(f"contact {contact.id} was erased")
    if contact.merged_into_id is not None:
        raise Conflict(f"contact {contact.id} was merged into contact {contact.merged_into_id}")
    status = {"granted": GRANTED, "confirmed": GRANTED, "withdrawn": WITHDRAWN, "requested": PENDING}[action]
    ctx.session.add(ConsentEvent(contact_id=contact.id, purpose=purpose, channel=channel, action=action,
                                 occurred_at=ctx.now, source=source_text, actor=ctx.actor.label, **proof))  # fmt: skip
    row: Consent | None = ctx.first(
        Consent, Consent.contact_id == contact.id, Consent.purpose == purpose, Consent.channel == channel
    )
    if row is None:
        row = Consent(contact_id=contact.id, purpose=purpose, channel=channel)
        ctx.session.add(row)
    elif status == PENDING and row.status == GRANTED:
        return row  # asking again never takes back a consent already given
    row.status, row.changed_at, row.source = status, ctx.now, source_text
    row.ip, row.form_version, row.text = proof["ip"], proof["form_version"], proof["text"]
    ctx.session.flush()
    return row


def consented_query(purpose: str, channel: str) -> Select[int]:
    """Ids of live contacts holding *purpose* on *channel*, flags applied (for SQL joins)."""
    purpose, channel = check_purpose(purpose, channel)
    flag = Contact.do_not_track if purpose in TRACKING_PURPOSES else Contact.do_not_contact
    return (
        select(Consent.contact_id)
        .join(Contact, Contact.id == Consent.contact_id)
        .where(
            Consent.purpose == purpose,
            Consent.channel == channel,
            Consent.status == GRANTED,
            flag.is_(False),
            Contact.erased_at.is_(None),
            Contact.merged_into_id.is_(None),
        )
    )


def request_in(
    ctx: HookContext,
    contact: Contact,
    purposes: Any,
    proof: dict[str, Any],
    *,
    form_slug: str | None = None,
) -> ConsentRequest | None:
    """Start a double opt-in inside *ctx*: pending consents, a request row, a confirmation mail.

    Returns ``None`` (and sends nothing) when every purpose is already granted,
    or when the contact has no email: the confirmation goes to that address
    and only there, so without one the consent stays pending, its proof kept.
    """
    pairs = parse_purposes(purposes)
    proof = dict(proof or {})
    source = proof.get("source") or (f"form:{form_slug}" if form_slug else "double-opt-in")
    states = {
        (row.purpose, row.channel): row.status
        for row in ctx.session.scalars(select(Consent).where(Consent.contact_id == contact.id))
    }
    missing = [pair for pair in pairs if states.get(pair) != GRANTED]
    if not missing:
        return None
    for purpose, channel in missing:
        record_in(ctx, contact, purpose, channel, "requested", source=source, ip=proof.get("ip"),
                  form_version=proof.get("form_version"), text=proof.get("text"))  # fmt: skip
    if not contact.email_normalized:
        return None  # no address to confirm: the request stays pending (with its proof) until granted by hand
    stored_proof = {
        "at": proof["at"].isoformat() if hasattr(proof.get("at"), "isoformat") else proof.get("at"),
        "ip": _ip(proof.get("ip")),
        "source": source,
        "form_version": proof.get("form_version"),
        "text": _wording(proof.get("text")),
    }
    request = ConsentRequest(
        contact_id=contact.id, email_normalized=contact.email_normalized, nonce=secrets.token_urlsafe(24),
        purposes=[list(pair) for pair in missing], form_slug=form_slug, proof=stored_proof, requested_at=ctx.now,
    )  # fmt: skip
    ctx.session.add(request)
    ctx.session.flush()
    _queue_confirmation(ctx, contact, request)
    return request


def confirm_url(ctx: HookContext, request: ConsentRequest) -> str:
    """The absolute double opt-in link of *request* (signed, bound to its address)."""
    token = ctx.crm.signer.dumps(CONFIRM_PURPOSE, {"r": request.id, "n": request.nonce, "e": request.email_normalized})
    return f"{ctx.crm.settings.base_url.rstrip('/')}/consent/confirm/{token}"


def _queue_confirmation(ctx: HookContext, contact: Contact, request: ConsentRequest) -> None:
    from crmcore.mail import MailMessage, queue_mail

    values = {
        "contact": contact,
        "url": confirm_url(ctx, request),
        "purposes": request.purposes,
        "days": CONFIRM_MAX_AGE_SECONDS // 86400,
    }
    text = ctx.crm.templates.get_template("core/consent_confirm.txt").render(**values)
    address = contact.email or contact.email_normalized or ""
    message = MailMessage(to=address, subject="Please confirm your subscription", text=text)
    queue_mail(ctx, message, key=f"consent-confirm:{request.id}")


def confirm_in(ctx: HookContext, token: str, *, ip: Any = None) -> ConsentRequest:
    """Confirm the request a double opt-in *token* names; idempotent for a repeated click."""
    data = ctx.crm.signer.loads(CONFIRM_PURPOSE, token, max_age=CONFIRM_MAX_AGE_SECONDS)
    if not isinstance(data, dict) or not {"r", "n", "e"} <= data.keys():
        raise InvalidToken("invalid link")
    request = ctx.session.scalars(
        select(ConsentRequest).where(ConsentRequest.id == data["r"]).with_for_update()
    ).first()
    if (
        request is None
        or not hmac.compare_digest(str(request.nonce), str(data["n"]))
        or request.email_normalized != data["e"]
    ):
        raise InvalidToken("invalid link")
    if request.confirmed_at is not None:
        return request
    contact = ctx.session.get(Contact, request.contact_id)
    if contact is None or contact.erased_at is not None or contact.merged_into_id is not None:
        raise NotFound("this subscription no longer exists")
    if contact.email_normalized != request.email_normalized:
        raise InvalidToken("this link was sent to an address the contact no longer uses")
    proof = request.proof or {}
    for purpose, channel in request.purposes:
        record_in(ctx, contact, purpose, channel, "confirmed", source=f"double-opt-in:{proof.get('source')}",
                  ip=ip, form_version=proof.get("form_version"), text=proof.get("text"))  # fmt: skip
    request.confirmed_at = ctx.now
    request.confirmed_ip = _ip(ip)
    ctx.audit("consent.confirm", "contact", contact.id, {"request_id": request.id, "purposes": request.purposes})
    return request


def consent_record(row: Consent | ConsentEvent) -> dict[str, Any]:
    """A ledger row as a plain dict."""
    keys = ["purpose", "channel", "source", "ip", "form_version", "text"]
    if isinstance(row, Consent):
        keys += ["status", "changed_at"]
    else:
        keys += ["action", "occurred_at", "actor"]
    return {key: getattr(row, key) for key in keys}


class ConsentService(Service):
    """``crm.consent``: grant, withdraw and check consent per purpose and channel."""

    PURPOSES = PURPOSES
    CHANNELS = CHANNELS

    def grant(
        self, contact: ContactRef, purpose: str, channel: str, *, source: str, ip: str | None = None,
        form_version: str | None = None, text: str | None = None, actor: Any = None,
    ) -> Consent:  # fmt: skip
        """Record that *contact* agreed to *purpose* on *channel*, with its proof."""
        with self.crm.transaction(actor) as ctx:
            row = record_in(ctx, get_contact(ctx, contact), purpose, channel, "granted", source=source, ip=ip,
                            form_version=form_version, text=text)  # fmt: skip
            ctx.audit("consent.grant", "contact", row.contact_id, {"purpose": purpose, "channel": channel})
        return row

    def withdraw(
        self, contact: ContactRef, purpose: str, channel: str, *, source: str, ip: str | None = None,
        form_version: str | None = None, text: str | None = None, actor: Any = None,
    ) -> Consent:  # fmt: skip
        """Record that *contact* withdrew *purpose* on *channel*; the earlier grant stays in the history."""
        with self.crm.transaction(actor) as ctx:
            row = record_in(ctx, get_contact(ctx, contact), purpose, channel, "withdrawn", source=source, ip=ip,
                            form_version=form_version, text=text)  # fmt: skip
            ctx.audit("consent.withdraw", "contact", row.contact_id, {"purpose": purpose, "channel": channel})
        return row

    def has(self, contact: ContactRef, purpose: str, channel: str) -> bool:
        """True when *contact* holds *purpose* on *channel* and no flag overrides it."""
        query = consented_query(purpose, channel)
        with self.crm.transaction(readonly=True) as ctx:
            found = get_contact(ctx, contact)
            return ctx.scalar(query.where(Consent.contact_id == found.id).limit(1)) is not None

    def consented(self, purpose: str, channel: str) -> Select[int]:
        """``select`` of the ids of contacts holding *purpose* on *channel* (join it, never loop).

        Do-not-contact (or, for tracking and profiling, do-not-track) contacts,
        erased and merged ones are left out.
        """
        return consented_query(purpose, channel)

    def status(self, contact: ContactRef) -> builtins.list[dict[str, Any]]:
        """The contact's current state per purpose and channel."""
        with self.crm.transaction(readonly=True) as ctx:
            found = get_contact(ctx, contact)
            rows = ctx.session.scalars(
                select(Consent).where(Consent.contact_id == found.id).order_by(Consent.purpose, Consent.channel)
            )
            return [consent_record(row) for row in rows]

    def history(self, contact: ContactRef) -> builtins.list[dict[str, Any]]:
        """Every ledger entry of the contact, oldest first (withdrawals never erase grants)."""
        with self.crm.transaction(readonly=True) as ctx:
            found = get_contact(ctx, contact)
            rows = ctx.session.scalars(
                select(ConsentEvent).where(ConsentEvent.contact_id == found.id).order_by(ConsentEvent.id)
            )
            return [consent_record(row) for row in rows]

    def request(
        self, contact: ContactRef, purposes: Any, *, proof: dict[str, Any], form_slug: str | None = None,
        actor: Any = None,
    ) -> ConsentRequest | None:  # fmt: skip
        """Start a double opt-in for *purposes*: pending consents and a confirmation mail."""
        with self.crm.transaction(actor) as ctx:
            return request_in(ctx, get_contact(ctx, contact), purposes, proof, form_slug=form_slug)

    def confirm(self, token: str, *, ip: str | None = None) -> ConsentRequest:
        """Confirm a double opt-in link's request: its pending consents become granted."""
        with self.crm.transaction() as ctx:
            return confirm_in(ctx, token, ip=ip)

"""The suppression list, unsubscribes, and bounce and complaint reports (DSN, ARF).

An address on the list is never mailed by a campaign or sequence again. It
gets there at once when its owner unsubscribes (the signed link or the
one-click ``List-Unsubscribe-Post``), when a delivery status notification
(RFC 3464) reports a permanent failure (a hard bounce), when a feedback
report (RFC 5965, a spam complaint) names it, when the mail server refuses
the mailbox as unknown, or when someone adds it by hand.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import Message
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import delete, select, update

from crmcore.errors import NotFound, ValidationError
from crmcore.models import Contact
from crmcore.validation import clean_text, normalize_email
from crmcore_email_marketing.models import Recipient, RecipientStatus, Suppression

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM

REASONS = ("unsubscribe", "bounce", "complaint", "manual")


def suppress_in(
    ctx: HookContext, address: str, reason: str, *, detail: str | None = None, campaign_id: int | None = None
) -> Suppression:
    """Put *address* on the suppression list inside *ctx* (the first reason is kept)."""
    normalized = address.strip().lower()
    found = ctx.first(Suppression, Suppression.email == normalized)
    if found is not None:
        return found
    row = Suppression(email=normalized[:320], reason=reason, detail=(detail or "")[:500] or None,
                      campaign_id=campaign_id, created_at=ctx.now)  # fmt: skip
    ctx.session.add(row)
    ctx.session.flush()
    ctx.audit("email.suppress", "email_marketing_suppression", row.id, {"reason": reason, "email": normalized})
    return row


@attrs.frozen(kw_only=True)
class ReportOutcome:
    """What one bounce or complaint report said about one address."""

    email: str
    #: ``hard_bounce``, ``soft_bounce`` or ``complaint``.
    kind: str
    status: str | None
    diagnostic: str | None
    #: The campaign recipient it was matched to (by Message-ID), if any.
    recipient_id: int | None
    suppressed: bool


class SuppressionService:
    """``email_marketing(crm).suppressions``: the list, unsubscribes, bounce and complaint reports."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def add(self, address: str, *, reason: str = "manual", detail: str | None = None, actor: Any = None) -> Suppression:
        """Suppress *address* (validated)."""
        if reason not in REASONS:
            raise ValidationError({"reason": f"must be one of {', '.join(REASONS)}"})
        _, normalized = normalize_email(address)
        with self.crm.transaction(actor) as ctx:
            return suppress_in(ctx, normalized, reason, detail=clean_text(detail, "detail", 500))

    def remove(self, address: str, *, actor: Any = None) -> None:
        """Take *address* off the list (it was suppressed by mistake; consent still applies)."""
        normalized = address.strip().lower()
        with self.crm.transaction(actor) as ctx:
            result = ctx.session.execute(delete(Suppression).where(Suppression.email == normalized))
            if not getattr(result, "rowcount", 0):
                raise NotFound(f"{address!r} is not suppressed")
            ctx.audit("email.unsuppress", "email_marketing_suppression", None, {"email": normalized})

    def list(self, *, limit: int = 1000) -> list[Suppression]:
        """The list, newest first."""
        with self.crm.transaction(readonly=True) as ctx:
            query = select(Suppression).order_by(Suppression.created_at.desc(), Suppression.id.desc()).limit(limit)
            return list(ctx.session.scalars(query))

    def is_suppressed(self, address: str) -> bool:
        """True when *address* is on the list."""
        with self.crm.transaction(readonly=True) as ctx:
            return ctx.first(Suppression, Suppression.email == address.strip().lower()) is not None

    def unsubscribe(
        self, contact_id: int | None, campaign_id: int | None = None, *, source: str = "link"
    ) -> str | None:
        """Unsubscribe a contact (from a signed link): suppress the address, withdraw marketing consent.

        Returns the address, or None when the contact is gone. Repeating it is harmless.
        """
        with self.crm.transaction() as ctx:
            contact = ctx.session.get(Contact, contact_id) if contact_id is not None else None
            if contact is None or not contact.email:
                return None
            suppress_in(ctx, contact.email, "unsubscribe", detail=f"via {source}", campaign_id=campaign_id)
            if campaign_id is not None:
                ctx.session.execute(
                    update(Recipient)
                    .where(Recipient.campaign_id == campaign_id, Recipient.contact_id == contact.id,
                           Recipient.unsubscribed_at.is_(None))
                    .values(unsubscribed_at=ctx.now)
                )  # fmt: skip
            ctx.crm.consent.withdraw(contact.id, "marketing", "email", source=f"email-unsubscribe:{source}")
            return contact.email

    def ingest_report(self, raw: bytes) -> list[ReportOutcome]:
        """Read a bounce (DSN) or complaint (ARF) message; suppress hard bounces and complainers.

        A message that is neither is a ValidationError saying so; nothing is written then.
        """
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        findings = parse_report(message)
        if not findings:
            raise ValidationError({"message": "not a delivery status notification or feedback report"})
        original_id = _original_message_id(message)
        outcomes: list[ReportOutcome] = []
        with self.crm.transaction() as ctx:
            recipient = None
            if original_id:
                recipient = ctx.first(Recipient, Recipient.message_id == original_id)
            for finding in findings:
                kind = finding["kind"]
                address = finding["email"]
                matched = recipient if recipient is not None and (recipient.email or "").lower() == address else None
                if matched is None and recipient is not None and len(findings) == 1:
                    matched = recipient
                suppressed = kind in ("hard_bounce", "complaint")
                if suppressed:
                    suppress_in(ctx, address, "bounce" if kind == "hard_bounce" else "complaint",
                                detail=finding["diagnostic"] or finding["status"],
                                campaign_id=matched.campaign_id if matched else None)  # fmt: skip
                if matched is not None:
                    if kind == "hard_bounce":
                        matched.bounced_at = ctx.now
                        matched.status = RecipientStatus.BOUNCED
                        matched.reason = (finding["diagnostic"] or finding["status"] or "bounced")[:480]
                    elif kind == "complaint":
                        matched.complained_at = ctx.now
                outcomes.append(ReportOutcome(
                    email=address, kind=kind, status=finding["status"], diagnostic=finding["diagnostic"],
                    recipient_id=matched.id if matched else None, suppressed=suppressed,
                ))  # fmt: skip
        return outcomes


def parse_report(message: Message) -> list[dict[str, Any]]:
    """The per-recipient findings of a DSN or ARF message: email, kind, status, diagnostic."""
    findings: list[dict[str, Any]] = []
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":
            findings.extend(_delivery_status(part))
        elif content_type == "message/feedback-report":
            findings.extend(_feedback(part, message))
    return findings


def _blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    return [email.message_from_string(block.strip() + "\n") for block in re.split(r"\n\s*\n", text) if block.strip()]


def _address(value: str | None) -> str | None:
    if not value:
        return None
    _, _, address = str(value).partition(";")
    address = (address or value).strip().strip("<>").strip().lower()
    return address if "@" in address else None


def _unfold(value: str | None) -> str | None:
    return " ".join(str(value).split()) if value else None


def _delivery_status(part: Message) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for block in _blocks(part):
        address = _address(block.get("Final-Recipient")) or _address(block.get("Original-Recipient"))
        if address is None:
            continue  # the per-message block
        action = (block.get("Action") or "").strip().lower()
        status = (block.get("Status") or "").strip().split(" ")[0] or None
        if action == "failed" and status and status.startswith("5"):
            kind = "hard_bounce"
        elif action in ("failed", "delayed") or (status and status.startswith("4")):
            kind = "soft_bounce"
        else:
            continue  # delivered, relayed, expanded: nothing to do
        out.append({"email": address, "kind": kind, "status": status,
                    "diagnostic": _unfold(block.get("Diagnostic-Code"))})  # fmt: skip
    return out


def _feedback(part: Message, message: Message) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for block in _blocks(part):
        feedback_type = (block.get("Feedback-Type") or "").strip().lower()
        if not feedback_type:
            continue
        address = _address(block.get("Original-Rcpt-To"))
        if address is None:
            original = _original_headers(message)
            address = _address(original.get("To")) if original is not None else None
        if address is None or feedback_type not in ("abuse", "fraud", "other", "virus"):
            continue
        agent = _unfold(block.get("User-Agent")) or "a mailbox provider"
        out.append({"email": address, "kind": "complaint", "status": feedback_type,
                    "diagnostic": f"complaint ({feedback_type}) from {agent}"})  # fmt: skip
    return out


def _original_headers(message: Message) -> Message | None:
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(part.get_payload())
            return email.message_from_string(text)
        if content_type == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
    return None


def _original_message_id(message: Message) -> str | None:
    original = _original_headers(message)
    if original is None:
        return None
    value = original.get("Message-ID")
    return str(value).strip() if value else None

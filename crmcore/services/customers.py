"""Customers: conversion, purchases, feedback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from crmcore.context import HookContext
from crmcore.errors import Conflict, ValidationError
from crmcore.events import CustomerConverted, FeedbackRecorded, PurchaseRecorded
from crmcore.i18n import N_
from crmcore.models import Contact, Feedback, Product, Purchase, PurchaseLine, Stage
from crmcore.rollup_marks import purchase_written
from crmcore.services.base import ContactRef, Service, change_stage, editable_contact, get_contact, get_user
from crmcore.validation import clean_text, currency_code, parse_datetime, positive_amount

#: Stages from which a contact becomes a customer (dormant and former customers return).
CONVERTIBLE = (Stage.LEAD, Stage.PROSPECT, Stage.DORMANT, Stage.FORMER)


def convert_in(
    ctx: HookContext,
    contact: Contact,
    *,
    reason: str,
    purchase_id: int | None = None,
    opportunity_id: int | None = None,
) -> bool:
    """Make *contact* a customer inside *ctx*; False when it already was one."""
    if contact.stage == Stage.CUSTOMER:
        return False
    ctx.call("crm_customer_before_convert", contact=contact)
    from_stage = contact.stage
    event = change_stage(ctx, contact, Stage.CUSTOMER, reason)
    ctx.call(
        "crm_customer_converted",
        event=CustomerConverted(
            contact_id=contact.id, from_stage=from_stage, purchase_id=purchase_id,
            opportunity_id=opportunity_id, occurred_at=ctx.now,
        ),
    )  # fmt: skip
    ctx.call("crm_lifecycle_stage_changed", event=event)
    return True


class CustomerService(Service):
    """Customers and what they bought."""

    def convert(self, ref: ContactRef, *, reason: str, actor: Any = None) -> Contact:
        """Make a lead or prospect a customer by hand (a contract signed offline)."""
        reason_text = clean_text(reason, "reason", 255, required=True)
        with self.crm.transaction(actor) as ctx:
            contact = editable_contact(ctx, ref)
            if contact.stage == Stage.CUSTOMER:
                raise Conflict.of(N_("contact %(id)s is already a customer"), id=str(contact.id))
            convert_in(ctx, contact, reason=reason_text or "")
        return contact

    def record_purchase(
        self,
        contact: ContactRef,
        *,
        sku: str | None = None,
        price: Any = None,
        quantity: int = 1,
        lines: Sequence[Mapping[str, Any]] | None = None,
        purchased_at: datetime | str | None = None,
        rep: int | str | None = None,
        currency: str | None = None,
        special_instructions: str | None = None,
        opportunity_id: int | None = None,
        external_ref: str | None = None,
        actor: Any = None,
    ) -> Purchase:
        """Record a purchase: one product (*sku*, *price*, *quantity*) or several *lines*.

        A line's price defaults to the product's list price. The contact's first
        purchase makes them a customer. *external_ref* (the shop's order number)
        makes recording idempotent: the same reference twice is a Conflict.
        """
        if lines is None:
            if sku is None:
                raise ValidationError({"sku": "give a sku (or lines)"})
            lines = [{"sku": sku, "price": price, "quantity": quantity}]
        if not lines:
            raise ValidationError({"lines": "a purchase needs at least one line"})
        code = currency_code(currency, self.crm.settings.currency)
        with self.crm.transaction(actor) as ctx:
            target = editable_contact(ctx, contact)
            if target.erased_at is not None:
                raise ValidationError({"contact": N_("this contact was erased")})
            reference = clean_text(external_ref, "external_ref", 120)
            if reference and ctx.first(Purchase, Purchase.external_ref == reference):
                raise Conflict(f"purchase {reference!r} was already recorded")
            built: list[PurchaseLine] = []
            errors: dict[str, str] = {}
            for number, line in enumerate(lines, start=1):
                try:
                    built.append(self._line(ctx, line, code))
                except ValidationError as exc:
                    errors.update({f"line {number} {k}": v for k, v in exc.errors.items()})
            when = None
            try:
                when = parse_datetime(purchased_at, "purchased_at")
                rep_user = get_user(ctx, rep, "rep")
            except ValidationError as exc:
                errors.update(exc.errors)
            if errors:
                raise ValidationError(errors)
            purchase = Purchase(
                contact_id=target.id, purchased_at=when or ctx.now,
                rep_id=rep_user.id if rep_user else (ctx.actor.user_id or target.owner_id),
                currency=code, total=sum((line.line_total for line in built), Decimal(0)),
                special_instructions=clean_text(special_instructions, "special_instructions", 4000),
                opportunity_id=opportunity_id, external_ref=reference, created_at=ctx.now,
            )  # fmt: skip
            ctx.session.add(purchase)
            ctx.call("crm_purchase_before_record", purchase=purchase)
            ctx.session.flush()
            for built_line in built:
                built_line.purchase_id = purchase.id
                ctx.session.add(built_line)
            if target.last_activity_at is None or purchase.purchased_at > target.last_activity_at:
                target.last_activity_at = purchase.purchased_at
            ctx.session.flush()
            purchase_written(ctx, purchase)
            ctx.audit("purchase.record", "contact", target.id,
                      {"purchase_id": purchase.id, "total": purchase.total, "currency": code})  # fmt: skip
            ctx.call(
                "crm_purchase_recorded",
                event=PurchaseRecorded(
                    purchase_id=purchase.id, contact_id=target.id, total=purchase.total,
                    currency=code, occurred_at=purchase.purchased_at,
                ),
            )  # fmt: skip
            if target.stage != Stage.CUSTOMER:
                convert_in(ctx, target, reason=N_("first purchase") if target.stage in (Stage.LEAD, Stage.PROSPECT)
                           else N_("purchased again"), purchase_id=purchase.id)  # fmt: skip
        return purchase

    def _line(self, ctx: HookContext, line: Mapping[str, Any], currency: str) -> PurchaseLine:
        sku = clean_text(line.get("sku"), "sku", 80, required=True)
        product = ctx.cache.setdefault("products", {}).get(sku) or ctx.first(Product, Product.sku == sku)
        if product is None:
            raise ValidationError({"sku": f"no product with SKU {sku!r}"})
        ctx.cache["products"][sku] = product
        raw_price = line.get("price")
        if raw_price is None:
            if product.unit_price is None:
                raise ValidationError({"price": f"product {sku} has no list price: give the price"})
            if product.currency != currency:
                raise ValidationError({"price": f"product {sku} is priced in {product.currency}, not {currency}"})
            raw_price = product.unit_price
        unit_price = positive_amount(raw_price, "price")
        try:
            quantity = int(line.get("quantity", 1))
        except (TypeError, ValueError):
            raise ValidationError({"quantity": "must be a whole number"}) from None
        if quantity < 1:
            raise ValidationError({"quantity": "must be at least 1 (record refunds as credit notes)"})
        return PurchaseLine(product_id=product.id, quantity=quantity, unit_price=unit_price,
                            line_total=unit_price * quantity)  # fmt: skip

    def purchases(self, contact: ContactRef) -> list[Purchase]:
        """A contact's purchases, newest first."""
        with self.crm.transaction(readonly=True) as ctx:
            target = get_contact(ctx, contact)
            return list(
                ctx.session.scalars(
                    select(Purchase).where(Purchase.contact_id == target.id).order_by(Purchase.purchased_at.desc())
                )
            )

    def add_feedback(
        self,
        contact: ContactRef | None,
        *,
        source: str,
        rating: int | None = None,
        comment: str | None = None,
        subject_kind: str | None = None,
        subject_id: int | None = None,
        actor: Any = None,
    ) -> Feedback:
        """Store customer feedback (a rating, a comment, or both) on the contact's timeline."""
        if rating is None and not (comment and comment.strip()):
            raise ValidationError({"rating": "give a rating or a comment"})
        if rating is not None and (not isinstance(rating, int) or not -100 <= rating <= 100):
            raise ValidationError({"rating": "must be a whole number"})
        with self.crm.transaction(actor) as ctx:
            target = get_contact(ctx, contact) if contact is not None else None
            feedback = Feedback(
                contact_id=target.id if target else None,
                source=clean_text(source, "source", 60, required=True) or "",
                rating=rating, comment=clean_text(comment, "comment", 20000),
                subject_kind=clean_text(subject_kind, "subject_kind", 60), subject_id=subject_id,
                created_at=ctx.now,
            )  # fmt: skip
            ctx.session.add(feedback)
            ctx.session.flush()
            ctx.call(
                "crm_feedback_recorded",
                event=FeedbackRecorded(
                    feedback_id=feedback.id, contact_id=feedback.contact_id, rating=rating,
                    source=feedback.source, occurred_at=ctx.now,
                ),
            )  # fmt: skip
        return feedback

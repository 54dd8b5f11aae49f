"""Contacts: add, find, list, update, tag, move back, merge and erase; plus products
and custom field declarations."""

from __future__ import annotations

import builtins
import functools
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs
from sqlalchemy import ColumnElement, Select, and_, bindparam, delete, or_, select, update

from crmcore import permissions
from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.i18n import N_
from crmcore.models import Contact, ContactTag, CustomField, LifecycleChange, Stage, Tag
from crmcore.registry import CustomFieldSpec
from crmcore.services.base import ContactRef, Service, change_stage, editable_contact, get_contact
from crmcore.services.fields import clean_contact
from crmcore.validation import clean_text, currency_code, positive_amount

if TYPE_CHECKING:
    from crmcore.models import Product
    from crmcore.services.imports import ImportResult
    from crmcore.services.timeline import TimelineCursor

#: Stages a contact can be moved back to by hand, and from where.
BACKWARD_MOVES = {
    Stage.DORMANT: {Stage.CUSTOMER},
    Stage.FORMER: {Stage.CUSTOMER, Stage.DORMANT},
    Stage.CUSTOMER: {Stage.DORMANT, Stage.FORMER},
    Stage.LEAD: {Stage.PROSPECT},
}


def set_tags(ctx: Any, contact_id: int, names: Iterable[str], *, replace: bool) -> None:
    """Put tags *names* on a contact (creating tags as needed)."""
    names = sorted(set(names))
    if replace:
        ctx.session.execute(delete(ContactTag).where(ContactTag.contact_id == contact_id))
    if not names:
        return
    existing = {t.name: t for t in ctx.session.scalars(select(Tag).where(Tag.name.in_(names)))}
    for name in names:
        tag = existing.get(name)
        if tag is None:
            tag = Tag(name=name)
            ctx.session.add(tag)
            ctx.session.flush()
        if ctx.session.get(ContactTag, (contact_id, tag.id)) is None:
            ctx.session.add(ContactTag(contact_id=contact_id, tag_id=tag.id))


def contact_search(text: str) -> ColumnElement[bool]:
    """The condition of contacts whose email, first or last name contains *text* (any case)."""
    return contact_matches(contact_pattern(text))


def contact_pattern(text: str) -> str:
    """The LIKE pattern of :func:`contact_search`."""
    return f"%{text.strip().lower()}%"


def contact_matches(pattern: Any) -> ColumnElement[bool]:
    """:func:`contact_search`'s condition for a pattern (a value, or a bound parameter in a statement built once)."""
    return or_(Contact.email_normalized.like(pattern), Contact.first_name.ilike(pattern),
               Contact.last_name.ilike(pattern))  # fmt: skip


def contact_tags(session: Any, contact_id: int) -> builtins.list[str]:
    """The names of a contact's tags, sorted."""
    return list(session.scalars(_tags_query(), {"contact_id": contact_id}))


@functools.cache
def _tags_query() -> Select[str]:
    """A contact's tag names (built once; the contact is a parameter)."""
    return (select(Tag.name).join(ContactTag, ContactTag.tag_id == Tag.id)
            .where(ContactTag.contact_id == bindparam("contact_id")).order_by(Tag.name))  # fmt: skip


class ContactService(Service):
    """Contacts as reps and admins manage them."""

    def add(self, *, actor: Any = None, **fields: Any) -> Contact:
        """Create a contact typed in by a rep; an email that exists is a Conflict.

        To record interest from someone who may already be known, use
        ``crm.leads.capture`` instead: it matches duplicates.
        """
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "contacts.edit")
            values = clean_contact(ctx, fields, creating=True)
            if values.get("owner_id") is None and ctx.actor.user_id is not None:
                values["owner_id"] = ctx.actor.user_id
            if (
                not values.get("email_normalized")
                and not values.get("phone_normalized")
                and not (values.get("first_name") or values.get("last_name"))
            ):
                raise ValidationError({"email": "give at least an email, a phone or a name"})
            if values.get("email_normalized") and ctx.first(
                Contact, Contact.email_normalized == values["email_normalized"]
            ):
                raise Conflict(f"a contact with email {values['email_normalized']} already exists")
            tags = values.pop("tags", [])
            contact = Contact(
                **{"stage": Stage.LEAD, **values},
                created_at=ctx.now,
                updated_at=ctx.now,
                stage_changed_at=ctx.now,
                last_activity_at=ctx.now,
                score=0,
            )
            ctx.session.add(contact)
            ctx.session.flush()
            ctx.session.add(_first_stage(contact, ctx.now, ctx.actor.user_id))
            set_tags(ctx, contact.id, tags, replace=False)
            ctx.audit("contact.create", "contact", contact.id, _public(values))
        return contact

    def get(self, ref: ContactRef) -> Contact:
        """Return a contact by id or email, or raise NotFound."""
        with self.crm.transaction(readonly=True) as ctx:
            return get_contact(ctx, ref)

    def list(
        self,
        *,
        stage: str | None = None,
        owner: int | str | None = None,
        tag: str | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[Contact]:
        """List contacts, newest first, filtered by stage, owner, tag or a search text."""
        query = select(Contact).where(Contact.erased_at.is_(None), Contact.merged_into_id.is_(None))
        if stage:
            if stage not in {s.value for s in Stage}:
                raise ValidationError({"stage": f"unknown stage {stage!r}"})
            query = query.where(Contact.stage == stage)
        with self.crm.transaction(readonly=True) as ctx:
            permissions.require(ctx, "contacts.view")
            reach = permissions.owner_condition(ctx, Contact.owner_id)
            if reach is not None:
                query = query.where(reach)
            if owner is not None:
                from crmcore.services.base import get_user

                user = get_user(ctx, owner)
                query = query.where(Contact.owner_id == (user.id if user else None))
            if tag:
                query = (
                    query.join(ContactTag, ContactTag.contact_id == Contact.id)
                    .join(Tag, Tag.id == ContactTag.tag_id)
                    .where(Tag.name == tag)
                )
            if search:
                query = query.where(contact_search(search))
            return list(ctx.session.scalars(query.order_by(Contact.id.desc()).limit(limit).offset(offset)))

    def update(self, ref: ContactRef, *, actor: Any = None, **fields: Any) -> Contact:
        """Change fields of a contact; every field is validated, changes are audited."""
        if "stage" in fields:
            raise ValidationError({"stage": "use qualify, convert or move_stage to change stages"})
        with self.crm.transaction(actor) as ctx:
            contact = editable_contact(ctx, ref)
            _refuse_erased(contact)
            values = clean_contact(ctx, fields, creating=False, custom_before=contact.custom)
            email = values.get("email_normalized")
            if email and email != contact.email_normalized and ctx.first(Contact, Contact.email_normalized == email):
                raise Conflict(f"a contact with email {email} already exists")
            tags = values.pop("tags", None)
            changes = {k: v for k, v in values.items() if getattr(contact, k) != v}
            for key, value in changes.items():
                setattr(contact, key, value)
            if tags is not None:
                set_tags(ctx, contact.id, tags, replace=True)
                changes["tags"] = tags
            contact.updated_at = ctx.now
            ctx.audit("contact.update", "contact", contact.id, _public(changes))
        return contact

    def names(self, ids: Iterable[int]) -> dict[int, str]:
        """Display names of the contacts *ids* within the actor's reach (one query)."""
        wanted = sorted({int(i) for i in ids if i is not None})
        if not wanted:
            return {}
        with self.crm.transaction(readonly=True) as ctx:
            query = select(Contact).where(Contact.id.in_(wanted))
            reach = permissions.owner_condition(ctx, Contact.owner_id)
            if reach is not None:
                query = query.where(reach)
            return {c.id: c.name for c in ctx.session.scalars(query)}

    def tags(self, ref: ContactRef) -> builtins.list[str]:
        """The contact's tags."""
        with self.crm.transaction(readonly=True) as ctx:
            return contact_tags(ctx.session, get_contact(ctx, ref).id)

    def move_stage(self, ref: ContactRef, to_stage: str, *, reason: str, actor: Any = None) -> Contact:
        """Move a contact back (customer → dormant → former, prospect → lead) with a reason.

        Forward moves go through ``crm.leads.qualify`` and ``crm.customers.convert``.
        """
        from crmcore.events import CustomerBecameDormant

        reason_text = clean_text(reason, "reason", 255, required=True)
        with self.crm.transaction(actor) as ctx:
            contact = editable_contact(ctx, ref)
            _refuse_erased(contact)
            try:
                target = Stage(to_stage)
            except ValueError:
                raise ValidationError({"stage": f"unknown stage {to_stage!r}"}) from None
            allowed = BACKWARD_MOVES.get(target, set())
            if contact.stage not in allowed:
                raise ValidationError.on("stage", N_("cannot move a %(from)s to %(to)s by hand"),
                                         terms={"from": str(contact.stage), "to": target.value})
            event = change_stage(ctx, contact, target, reason_text)
            if target == Stage.DORMANT:
                ctx.call(
                    "crm_customer_became_dormant",
                    event=CustomerBecameDormant(
                        contact_id=contact.id, last_activity_at=contact.last_activity_at, occurred_at=ctx.now
                    ),
                )
            ctx.call("crm_lifecycle_stage_changed", event=event)
        return contact

    def merge(self, survivor_ref: ContactRef, merged_ref: ContactRef, *, actor: Any = None) -> Contact:
        """Fold *merged_ref* into *survivor_ref*: its records move, the merge is recorded."""
        from crmcore.events import ContactMerged
        from crmcore.models import Activity, Feedback, Interaction, Opportunity, Purchase, Touchpoint

        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "contacts.merge")
            survivor = get_contact(ctx, survivor_ref)
            merged = get_contact(ctx, merged_ref)
            if survivor.id == merged.id:
                raise ValidationError({"contact": N_("cannot merge a contact with itself")})
            for contact in (survivor, merged):
                _refuse_erased(contact)
                if contact.merged_into_id:
                    raise ValidationError.on("contact", N_("contact %(id)s was already merged"), id=str(contact.id))
            ctx.call("crm_contact_before_merge", survivor=survivor, merged=merged)
            from crmcore.rollup_marks import contacts_merged  # only a merge needs the rollups' models

            contacts_merged(ctx, (survivor.id, merged.id))  # their sales' attribution may change
            for model in (Touchpoint, Purchase, Opportunity, Interaction, Activity, Feedback, LifecycleChange):
                ctx.session.execute(update(model).where(model.contact_id == merged.id).values(contact_id=survivor.id))
            set_tags(ctx, survivor.id, contact_tags(ctx.session, merged.id), replace=False)
            _merge_consent(ctx, survivor.id, merged.id)
            filled = {}
            for field in ("phone", "phone_normalized", "first_name", "last_name", "title",
                          "organization_id", "owner_id", "country", "region", "city",
                          "language", "timezone", "birth_date", "source"):  # fmt: skip
                if getattr(survivor, field) is None and getattr(merged, field) is not None:
                    filled[field] = getattr(merged, field)
                    setattr(survivor, field, getattr(merged, field))
            survivor.custom = {**(merged.custom or {}), **(survivor.custom or {})}
            rank = [Stage.LEAD, Stage.PROSPECT, Stage.FORMER, Stage.DORMANT, Stage.CUSTOMER]
            if rank.index(Stage(merged.stage)) > rank.index(Stage(survivor.stage)):
                survivor.stage = merged.stage
            activity = [t for t in (survivor.last_activity_at, merged.last_activity_at) if t]
            survivor.last_activity_at = max(activity) if activity else None
            survivor.do_not_contact = survivor.do_not_contact or merged.do_not_contact
            survivor.do_not_track = survivor.do_not_track or merged.do_not_track
            survivor.updated_at = ctx.now
            merged_email = merged.email_normalized
            merged.merged_into_id = survivor.id
            merged.email_normalized = None
            merged.updated_at = ctx.now
            ctx.session.flush()
            ctx.audit(
                "contact.merge",
                "contact",
                survivor.id,
                {"merged_id": merged.id, "merged_email": merged_email, "filled": _public(filled)},
            )
            ctx.call(
                "crm_contact_merged",
                event=ContactMerged(survivor_id=survivor.id, merged_id=merged.id, occurred_at=ctx.now),
            )
        return survivor

    def erase(self, ref: ContactRef, *, actor: Any = None) -> None:
        """Erase a person: personal data removed or anonymized everywhere, aggregates kept.

        Touchpoints, purchases and feedback stay (for reports) but lose what
        identifies the person; free text a rep wrote about them is removed.
        Plugins erase their own rows in ``crm_contact_erased``.
        """
        from crmcore.events import ContactErased
        from crmcore.models import (
            Activity,
            AuditEntry,
            Consent,
            ConsentEvent,
            ConsentRequest,
            Feedback,
            Interaction,
            Purchase,
            Touchpoint,
        )

        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "contacts.erase")
            contact = get_contact(ctx, ref)
            if contact.erased_at is not None:
                raise Conflict(f"contact {contact.id} was already erased")
            ctx.call("crm_contact_before_erase", contact=contact)
            for field in ("email", "email_normalized", "phone", "phone_normalized", "first_name",
                          "last_name", "title", "city", "region", "birth_date", "timezone"):  # fmt: skip
                setattr(contact, field, None)
            contact.custom = {}
            contact.erased_at = ctx.now
            contact.updated_at = ctx.now
            contact.do_not_contact = True
            contact.do_not_track = True
            ctx.session.execute(delete(ContactTag).where(ContactTag.contact_id == contact.id))
            ctx.session.execute(
                update(Touchpoint)
                .where(Touchpoint.contact_id == contact.id)
                .values(referrer=None, url=None, click_id=None, notes=None, details={})
            )
            ctx.session.execute(
                update(Interaction).where(Interaction.contact_id == contact.id).values(subject=None, body=None)
            )
            ctx.session.execute(
                update(Purchase).where(Purchase.contact_id == contact.id).values(special_instructions=None)
            )
            ctx.session.execute(update(Feedback).where(Feedback.contact_id == contact.id).values(comment=None))
            ctx.session.execute(update(Activity).where(Activity.contact_id == contact.id).values(notes=None))
            ctx.session.execute(
                update(AuditEntry)
                .where(AuditEntry.entity == "contact", AuditEntry.entity_id == contact.id)
                .values(changes={})
            )
            # The ledger keeps what was agreed and when (the record of lawful processing),
            # not where from: IP addresses go, open double opt-in requests go.
            ctx.session.execute(update(Consent).where(Consent.contact_id == contact.id).values(ip=None))
            ctx.session.execute(update(ConsentEvent).where(ConsentEvent.contact_id == contact.id).values(ip=None))
            ctx.session.execute(delete(ConsentRequest).where(ConsentRequest.contact_id == contact.id))
            ctx.audit("contact.erase", "contact", contact.id, {})
            ctx.call("crm_contact_erased", event=ContactErased(contact_id=contact.id, occurred_at=ctx.now))

    def dormant(
        self, *, period: str | timedelta | None = None, limit: int | None = None, offset: int = 0
    ) -> builtins.list[Contact]:
        """Customers without purchase, touchpoint or interaction for *period*, longest idle first.

        *period* defaults to the ``dormant_after_days`` setting; ``"18m"``,
        ``"3y"``, ``"90d"`` or a timedelta. Customers already moved to the
        dormant stage and those the daily check has not reached yet both count.
        """
        with self.crm.transaction(readonly=True) as ctx:
            query = dormant_query(ctx, period).order_by(Contact.last_activity_at, Contact.id).offset(offset)
            if limit is not None:
                query = query.limit(limit)
            return list(ctx.session.scalars(query))

    def purge_dormant(self, period: str | timedelta, *, actor: Any = None) -> PurgeResult:
        """Erase every contact dormant for *period* (``crm contact purge --dormant-for 3y``).

        Each contact is erased in its own transaction, through the erase hooks;
        one a plugin refuses (a legal hold) is reported and the others go on.
        """
        cutoff_period = parse_period(period) if isinstance(period, str) else period
        with self.crm.transaction(readonly=True) as ctx:
            ids = list(ctx.session.scalars(
                dormant_query(ctx, cutoff_period).with_only_columns(Contact.id).order_by(Contact.id)))  # fmt: skip
        result = PurgeResult()
        for contact_id in ids:
            try:
                self.erase(contact_id, actor=actor)
            except (ValidationError, Conflict) as exc:
                result.refused[contact_id] = str(exc)
            else:
                result.erased.append(contact_id)
        return result

    def details(self, ref: ContactRef) -> dict[str, Any]:
        """Everything ``crm contact show`` prints: fields, tags, plugins' sections."""
        with self.crm.transaction(readonly=True) as ctx:
            contact = get_contact(ctx, ref)
            data = contact_record(contact)
            data["tags"] = contact_tags(ctx.session, contact.id)
            for _plugin, sections in ctx.crm.plugins.collect_by_plugin("crm_contact_details", contact=contact, ctx=ctx):
                data.update(sections)
            return data

    def export_person(self, ref: ContactRef) -> dict[str, Any]:
        """Everything held on one person, as JSON-able data (a subject access request)."""
        from crmcore.models import (
            Activity,
            Consent,
            ConsentEvent,
            Feedback,
            Interaction,
            Opportunity,
            Purchase,
            Touchpoint,
        )

        with self.crm.transaction(readonly=True) as ctx:
            contact = get_contact(ctx, ref)
            data: dict[str, Any] = {"contact": contact_record(contact), "tags": contact_tags(ctx.session, contact.id)}
            for key, model, order in (
                ("lifecycle", LifecycleChange, LifecycleChange.occurred_at),
                ("touchpoints", Touchpoint, Touchpoint.occurred_at),
                ("interactions", Interaction, Interaction.occurred_at),
                ("purchases", Purchase, Purchase.purchased_at),
                ("opportunities", Opportunity, Opportunity.created_at),
                ("activities", Activity, Activity.created_at),
                ("feedback", Feedback, Feedback.created_at),
                ("consent", Consent, Consent.id),
                ("consent_history", ConsentEvent, ConsentEvent.id),
            ):
                rows = ctx.session.scalars(select(model).where(model.contact_id == contact.id).order_by(order))
                data[key] = [row_dict(row) for row in rows]
            for plugin, sections in ctx.crm.plugins.collect_by_plugin("crm_contact_details", contact=contact, ctx=ctx):
                data.setdefault("plugins", {})[plugin] = sections
            return data

    def import_csv(
        self,
        path: str | Path,
        *,
        mapping: dict[str, str] | None = None,
        dry_run: bool = False,
        errors_to: str | Path | IO[str] | None = None,
        encoding: str | None = None,
        delimiter: str | None = None,
        existing: str = "update",
        source: str | None = None,
        batch_size: int = 2000,
        progress: Callable[[int], None] | None = None,
        actor: Any = None,
    ) -> ImportResult:
        """Import contacts from a CSV file, streamed in batches; bad rows are reported, good ones kept.

        *mapping* maps column names to fields (``{"E-Mail": "email"}``); columns
        named like a field map themselves. Rows matching an existing contact
        (normalized email, then phone) update it (*existing* ``"update"``) or
        are left alone (``"skip"``), so a second run creates nobody twice.
        Refused rows go to *errors_to* (a CSV with line numbers and reasons).
        *dry_run* validates and matches everything and writes nothing.
        *progress* is called with the number of bytes read, as they are read.
        """
        from crmcore.services.imports import ContactImporter

        return ContactImporter(
            self.crm, path, mapping=mapping, dry_run=dry_run, errors_to=errors_to, encoding=encoding,
            delimiter=delimiter, existing=existing, source=source, batch_size=batch_size, progress=progress,
            actor=actor,
        ).run()  # fmt: skip

    def export_all(self, output: IO[str], fmt: str = "csv") -> int:
        """Stream every live contact to *output* as CSV or a JSON array; memory stays flat."""
        import csv
        import json

        from crmcore.cli.output import json_default

        count = 0
        with self.crm.transaction(readonly=True) as ctx:
            permissions.require(ctx, "contacts.export")
            rows = ctx.session.scalars(
                select(Contact)
                .where(Contact.erased_at.is_(None), Contact.merged_into_id.is_(None))
                .order_by(Contact.id)
                .execution_options(yield_per=1000)
            )
            writer = csv.writer(output) if fmt == "csv" else None
            if writer:
                writer.writerow(CONTACT_COLUMNS)
            else:
                output.write("[")
            for contact in rows:
                record = contact_record(contact)
                if writer:
                    writer.writerow(["" if v is None else json.dumps(v) if isinstance(v, dict) else v
                                     for v in record.values()])  # fmt: skip
                else:
                    output.write(
                        ("," if count else "") + "\n" + json.dumps(record, default=json_default, sort_keys=True)
                    )
                count += 1
                if count % 1000 == 0:
                    ctx.session.expunge_all()
            if not writer:
                output.write("\n]\n")
        return count

    def timeline(
        self, ref: ContactRef, *, limit: int = 50, before: datetime | TimelineCursor | None = None
    ) -> builtins.list[dict[str, Any]]:
        """The contact's history, newest first: one page of *limit* items.

        *before* is where the previous page ended (``TimelineCursor.of(items[-1])``),
        or a time (only items strictly older).
        """
        from crmcore.services.timeline import timeline

        with self.crm.transaction(readonly=True) as ctx:
            return timeline(ctx, get_contact(ctx, ref), limit=limit, before=before)


_PERIOD = re.compile(r"(\d+)\s*([dwmy])")
_PERIOD_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}


def parse_period(text: str, field: str = "period") -> timedelta:
    """``"90d"``, ``"6w"``, ``"18m"`` (30-day months), ``"3y"`` (365-day years) as a timedelta."""
    match = _PERIOD.fullmatch(str(text).strip().lower())
    if match is None or int(match[1]) == 0:
        raise ValidationError({field: f"{text!r} is not a period such as 90d, 6w, 18m or 3y"})
    return timedelta(days=int(match[1]) * _PERIOD_DAYS[match[2]])


def dormant_query(ctx: Any, period: str | timedelta | None = None) -> Select[Contact]:
    """Live customers (or dormant ones) idle since before ``now - period``."""
    if period is None:
        period = timedelta(days=ctx.crm.settings.dormant_after_days)
    elif isinstance(period, str):
        period = parse_period(period)
    cutoff = ctx.now - period
    idle = or_(Contact.last_activity_at < cutoff, and_(Contact.last_activity_at.is_(None), Contact.created_at < cutoff))
    return select(Contact).where(
        Contact.stage.in_([Stage.CUSTOMER, Stage.DORMANT]), idle,
        Contact.erased_at.is_(None), Contact.merged_into_id.is_(None),
    )  # fmt: skip


@attrs.define
class PurgeResult:
    """What a purge erased, and what plugins refused to let go (id: reason)."""

    erased: builtins.list[int] = attrs.field(factory=list)
    refused: dict[int, str] = attrs.field(factory=dict)


CONTACT_COLUMNS = (
    "id", "email", "phone", "first_name", "last_name", "title", "stage", "score",
    "owner_id", "organization_id", "source", "country", "region", "city", "language",
    "timezone", "birth_date", "custom", "do_not_contact", "do_not_track", "created_at",
    "updated_at", "last_activity_at", "merged_into_id", "erased_at",
)  # fmt: skip


def contact_record(contact: Contact) -> dict[str, Any]:
    """A contact as a plain dict (the stable JSON shape of ``crm contact show``)."""
    return {column: getattr(contact, column) for column in CONTACT_COLUMNS}


def row_dict(row: Any) -> dict[str, Any]:
    """Any mapped row as a dict of its columns."""
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def _first_stage(contact: Contact, now: datetime, actor_id: int | None) -> LifecycleChange:
    return LifecycleChange(
        contact_id=contact.id, from_stage=None, to_stage=contact.stage,
        reason=N_("created"), occurred_at=now, actor_id=actor_id,
    )  # fmt: skip


def _merge_consent(ctx: Any, survivor_id: int, merged_id: int) -> None:
    """Move the merged contact's ledger over; per purpose and channel the latest change wins."""
    from crmcore.models import Consent, ConsentEvent

    ctx.session.execute(update(ConsentEvent).where(ConsentEvent.contact_id == merged_id).values(contact_id=survivor_id))
    rows = ctx.session.scalars(select(Consent).where(Consent.contact_id == survivor_id))
    kept = {(c.purpose, c.channel): c for c in rows}
    for row in ctx.session.scalars(select(Consent).where(Consent.contact_id == merged_id)).all():
        mine = kept.get((row.purpose, row.channel))
        if mine is None:
            row.contact_id = survivor_id
            continue
        if row.changed_at > mine.changed_at:
            for key in ("status", "changed_at", "source", "ip", "form_version", "text"):
                setattr(mine, key, getattr(row, key))
        ctx.session.delete(row)
    ctx.session.flush()


def _refuse_erased(contact: Contact) -> None:
    if contact.erased_at is not None:
        raise Conflict.of(N_("contact %(id)s was erased"), id=str(contact.id))


def _public(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not k.endswith("_normalized")}


class ProductService(Service):
    """The product catalogue."""

    def add(
        self, sku: str, name: str, *, unit_price: Any = None, currency: str | None = None,
        category: str | None = None, actor: Any = None,
    ) -> Product:  # fmt: skip
        """Add a product; the SKU must be unique."""
        from crmcore.models import Product

        sku_text = clean_text(sku, "sku", 80, required=True)
        name_text = clean_text(name, "name", 255, required=True)
        price = positive_amount(unit_price, "unit_price") if unit_price is not None else None
        code = currency_code(currency, self.crm.settings.currency)
        with self.crm.transaction(actor) as ctx:
            if ctx.first(Product, Product.sku == sku_text):
                raise Conflict(f"a product with SKU {sku_text} already exists")
            product = Product(sku=sku_text, name=name_text, unit_price=price, currency=code,
                              category=clean_text(category, "category", 120), active=True)  # fmt: skip
            ctx.session.add(product)
            ctx.session.flush()
            ctx.audit("product.create", "product", product.id, {"sku": sku_text, "unit_price": price})
        return product

    def get(self, sku: str) -> Product:
        """A product by SKU."""
        from crmcore.models import Product

        with self.crm.transaction(readonly=True) as ctx:
            product = ctx.first(Product, Product.sku == sku)
            if product is None:
                raise NotFound(f"no product with SKU {sku!r}")
            return product  # type: ignore[no-any-return]

    def list(self) -> builtins.list[Product]:
        """Every product, by SKU."""
        from crmcore.models import Product

        with self.crm.transaction(readonly=True) as ctx:
            return list(ctx.session.scalars(select(Product).order_by(Product.sku)))


class CustomFieldService(Service):
    """Custom field declarations (from plugins, bundles or admins)."""

    TYPES = ("text", "number", "integer", "date", "bool", "choice")

    def define(self, spec: CustomFieldSpec, *, owner: str = "admin", actor: Any = None) -> CustomField:
        """Declare (or update) a custom field; idempotent for the same declaration."""
        if spec.entity not in {"contact", "organization"}:
            raise ValidationError({"entity": "custom fields go on contact or organization"})
        if spec.type not in self.TYPES:
            raise ValidationError({"type": f"unknown type {spec.type!r}; types: {', '.join(self.TYPES)}"})
        if spec.type == "choice" and not spec.choices:
            raise ValidationError({"choices": "a choice field needs choices"})
        if not spec.name.isidentifier():
            raise ValidationError({"name": "use letters, digits and underscores"})
        with self.crm.transaction(actor) as ctx:
            field = ctx.first(CustomField, CustomField.entity == spec.entity, CustomField.name == spec.name)
            values = {"label": spec.label, "type": spec.type,
                      "choices": list(spec.choices) if spec.choices else None,
                      "required": spec.required, "description": spec.description or None}  # fmt: skip
            if field is None:
                field = CustomField(entity=spec.entity, name=spec.name, owner=owner, **values)
                ctx.session.add(field)
                ctx.session.flush()
                ctx.audit("custom_field.create", "custom_field", field.id, {"name": spec.name, **values})
                ctx.metadata_changed()
            elif any(getattr(field, k) != v for k, v in values.items()):
                for key, value in values.items():
                    setattr(field, key, value)
                ctx.audit("custom_field.update", "custom_field", field.id, values)
                ctx.metadata_changed()
        return field  # type: ignore[no-any-return]

    def list(self, entity: str = "contact") -> builtins.list[CustomField]:
        """The declared fields of *entity*."""
        with self.crm.transaction(readonly=True) as ctx:
            return list(ctx.session.scalars(select(CustomField).where(CustomField.entity == entity)))

    def sync_from_plugins(self) -> builtins.list[CustomField]:
        """Store the fields declared through ``crm_register_custom_fields``."""
        fields = []
        for plugin, specs in self.crm.plugins.collect_by_plugin("crm_register_custom_fields"):
            for spec in specs:
                fields.append(self.define(spec, owner=plugin))
        return fields

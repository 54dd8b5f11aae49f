"""Vendor bundles: an industry's defaults, applied idempotently, upgraded without undoing users' edits.

A bundle is data (:class:`Bundle` of :class:`BundleItem`), declared by a
distribution through ``crm_register_bundles``. Each item has a *kind* owned by
the core or a plugin (:class:`BundleKind`, from ``crm_register_bundle_kinds``)
that knows how to read the item's current state and write the bundle's data.

``crm.bundles.apply(name)`` remembers, per item, a checksum of the data it
applied and of the state that resulted. Applying again compares both:

==========================  ===================================  ============
bundle's data vs. applied    current state vs. what it left       outcome
==========================  ===================================  ============
(never applied), absent      –                                    ``created``
(never applied), present     –                                    ``kept``: not the bundle's
same                         same                                 ``unchanged``
changed (newer version)      same (nobody edited it)              ``upgraded``
same or changed              edited or deleted by a user          ``kept``: the user's edit stays
==========================  ===================================  ============

The whole apply is one transaction: an item the owning service refuses rolls
everything back, with the item named in the error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select

from crmcore.errors import CRMError, NotFound, ValidationError
from crmcore.services.base import Service

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.models import BundleRecord


@attrs.frozen(kw_only=True)
class BundleItem:
    """One default a bundle ships: ``BundleItem(kind="pipeline", key="clinic", data={...})``."""

    #: A kind some enabled plugin registers (``pipeline``, ``custom_field``, ``ticketing.sla_policy``, …).
    kind: str
    #: The item's name within its kind (a pipeline's name, a field's name, …).
    key: str
    #: JSON-able data, in the form the kind's documentation gives.
    data: dict[str, Any]


@attrs.frozen(kw_only=True)
class Bundle:
    """A named, versioned set of defaults for one industry or use."""

    name: str
    #: Dotted integers (``"1.2"``): a higher version may upgrade what the bundle owns.
    version: str
    title: str = ""
    items: tuple[BundleItem, ...] = ()

    @property
    def version_key(self) -> tuple[int, ...]:
        """The version as a comparable tuple."""
        return tuple(int(part) for part in self.version.split("."))


@attrs.frozen(kw_only=True)
class BundleKind:
    """How the plugin owning a kind of item reads and writes it (inside the apply's transaction)."""

    name: str
    #: ``read(ctx, key)``: the item's current state as JSON-able data, or ``None`` if absent.
    read: Callable[[HookContext, str], dict[str, Any] | None]
    #: ``write(ctx, key, data)``: create or update the item through the owning service.
    write: Callable[[HookContext, str, dict[str, Any]], None]
    help: str = ""


@attrs.frozen
class ItemOutcome:
    """What applying one item did: ``created``, ``upgraded``, ``unchanged`` or ``kept`` (with why)."""

    kind: str
    key: str
    outcome: str
    reason: str = ""


def checksum(data: Any) -> str:
    """A stable digest of JSON-able data (key order does not matter)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class _DryRun(Exception):
    """Rolls a dry run's transaction back."""


class BundleService(Service):
    """The bundles installed (``crm.bundles``): list them, and apply one."""

    def available(self) -> dict[str, Bundle]:
        """Every bundle the enabled plugins declare, by name."""
        found: dict[str, Bundle] = {}
        for plugin, bundles in self.crm.plugins.collect_by_plugin("crm_register_bundles"):
            for bundle in bundles:
                if bundle.name in found:
                    raise CRMError(f"bundle {bundle.name!r} is declared twice (again by plugin {plugin!r})")
                found[bundle.name] = bundle
        return found

    def get(self, name: str) -> Bundle:
        """The bundle called *name*; NotFound lists the installed ones."""
        bundles = self.available()
        if name not in bundles:
            names = ", ".join(sorted(bundles)) or "none installed"
            raise NotFound(f"no bundle {name!r} (bundles: {names})")
        return bundles[name]

    def kinds(self) -> dict[str, BundleKind]:
        """Every item kind the enabled plugins can apply, by name."""
        kinds: dict[str, BundleKind] = {}
        for kind in self.crm.plugins.collect("crm_register_bundle_kinds"):
            kinds[kind.name] = kind
        return kinds

    def applied_version(self, name: str) -> str | None:
        """The version of *name* last applied, if any."""
        from crmcore.models import BundleRecord

        with self.crm.transaction(readonly=True) as ctx:
            versions = ctx.session.scalars(select(BundleRecord.version).where(BundleRecord.bundle == name)).all()
        return max(versions, key=lambda v: tuple(int(p) for p in v.split("."))) if versions else None

    def apply(self, name: str, *, dry_run: bool = False, actor: Any = None) -> list[ItemOutcome]:
        """Apply bundle *name* in one transaction (rolled back with *dry_run*); return each item's outcome."""
        from crmcore.models import BundleRecord

        bundle = self.get(name)
        kinds = self.kinds()
        missing = sorted({item.kind for item in bundle.items} - set(kinds))
        if missing:
            raise ValidationError(
                {"kinds": f"bundle {name!r} needs item kinds no enabled plugin provides: {', '.join(missing)}"}
            )
        seen: set[tuple[str, str]] = set()
        for item in bundle.items:
            if (item.kind, item.key) in seen:
                raise ValidationError({"items": f"bundle {name!r} lists {item.kind} {item.key!r} twice"})
            seen.add((item.kind, item.key))
        outcomes: list[ItemOutcome] = []
        try:
            with self.crm.transaction(actor) as ctx:
                records = {
                    (r.kind, r.key): r
                    for r in ctx.session.scalars(select(BundleRecord).where(BundleRecord.bundle == name))
                }
                for item in bundle.items:
                    try:
                        outcomes.append(self._apply_item(ctx, bundle, kinds[item.kind], item, records))
                    except (ValidationError, NotFound) as exc:
                        raise ValidationError({f"{item.kind} {item.key}": str(exc)}) from exc
                changed = [f"{o.kind}:{o.key}" for o in outcomes if o.outcome in ("created", "upgraded")]
                ctx.audit("bundle.apply", "bundle", None, {"bundle": name, "version": bundle.version,
                          "changed": changed})  # fmt: skip
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        return outcomes

    @staticmethod
    def _apply_item(
        ctx: HookContext,
        bundle: Bundle,
        kind: BundleKind,
        item: BundleItem,
        records: dict[tuple[str, str], BundleRecord],
    ) -> ItemOutcome:
        from crmcore.models import BundleRecord

        record = records.get((item.kind, item.key))
        current = kind.read(ctx, item.key)
        data_sum = checksum(item.data)

        def write(outcome: str) -> ItemOutcome:
            kind.write(ctx, item.key, item.data)
            ctx.session.flush()
            state = kind.read(ctx, item.key)
            if record is None:
                ctx.session.add(BundleRecord(bundle=bundle.name, kind=item.kind, key=item.key, version=bundle.version,
                                             data_checksum=data_sum, state_checksum=checksum(state),
                                             applied_at=ctx.now))  # fmt: skip
            else:
                record.version, record.data_checksum = bundle.version, data_sum
                record.state_checksum, record.applied_at = checksum(state), ctx.now
            return ItemOutcome(item.kind, item.key, outcome)

        if record is None:
            if current is None:
                return write("created")
            return ItemOutcome(item.kind, item.key, "kept", "exists already and was not made by this bundle")
        if current is None:
            return ItemOutcome(item.kind, item.key, "kept", "deleted since the bundle made it")
        if checksum(current) != record.state_checksum:
            return ItemOutcome(item.kind, item.key, "kept", "edited since the bundle made it")
        if record.data_checksum == data_sum:
            record.version = bundle.version  # confirmed by this version
            return ItemOutcome(item.kind, item.key, "unchanged")
        return write("upgraded")


# -- the core's kinds -----------------------------------------------------------------


def _read_pipeline(ctx: HookContext, key: str) -> dict[str, Any] | None:
    from crmcore.models import Pipeline, PipelineStage

    pipeline = ctx.first(Pipeline, Pipeline.name == key)
    if pipeline is None:
        return None
    stages = ctx.session.scalars(
        select(PipelineStage).where(PipelineStage.pipeline_id == pipeline.id).order_by(PipelineStage.position)
    )
    return {
        "default": pipeline.is_default,
        "stages": [{"key": s.key, "name": s.name, "probability": s.probability, "outcome": s.outcome} for s in stages],
    }


def _write_pipeline(ctx: HookContext, key: str, data: dict[str, Any]) -> None:
    from crmcore.services.sales import StageSpec

    try:
        stages = [StageSpec(**stage) for stage in data["stages"]]
    except (KeyError, TypeError) as exc:
        raise ValidationError({"stages": f"give stages as key, name, probability and outcome ({exc})"}) from None
    ctx.crm.sales.define_pipeline(key, stages, default=bool(data.get("default")))


def _read_custom_field(ctx: HookContext, key: str) -> dict[str, Any] | None:
    from crmcore.models import CustomField

    entity, _, name = key.rpartition(".")
    field = ctx.first(CustomField, CustomField.entity == (entity or "contact"), CustomField.name == name)
    if field is None:
        return None
    return {"label": field.label, "type": field.type, "choices": field.choices, "required": field.required,
            "description": field.description}  # fmt: skip


def _write_custom_field(ctx: HookContext, key: str, data: dict[str, Any]) -> None:
    from crmcore.registry import CustomFieldSpec

    entity, _, name = key.rpartition(".")
    try:
        spec = CustomFieldSpec(name=name, entity=entity or "contact", **{
            **data, "choices": tuple(data["choices"]) if data.get("choices") else None})  # fmt: skip
    except TypeError as exc:
        raise ValidationError({"data": f"custom field data: {exc}"}) from None
    ctx.crm.custom_fields.define(spec, owner="bundle")


def _read_segment(ctx: HookContext, key: str) -> dict[str, Any] | None:
    from crmcore.models import Segment

    segment = ctx.first(Segment, Segment.name == key)
    if segment is None:
        return None
    return {"definition": segment.definition, "description": segment.description}


def _write_segment(ctx: HookContext, key: str, data: dict[str, Any]) -> None:
    from crmcore.models import Segment

    if "definition" not in data:
        raise ValidationError({"definition": "a segment needs a definition"})
    if ctx.first(Segment, Segment.name == key) is None:
        ctx.crm.segments.create(key, data["definition"], description=data.get("description"))
    else:
        ctx.crm.segments.update(key, data["definition"])


#: The kinds the core applies: a pipeline (key: its name; data: ``default`` and ``stages``),
#: a custom field (key: ``contact.<name>`` or ``organization.<name>``; data: label, type, …)
#: and a saved segment (key: its name; data: ``definition`` and ``description``).
CORE_KINDS = (
    BundleKind(name="pipeline", read=_read_pipeline, write=_write_pipeline,
               help="a sales pipeline: {default: bool, stages: [{key, name, probability, outcome}]}"),
    BundleKind(name="custom_field", read=_read_custom_field, write=_write_custom_field,
               help="a custom field, key entity.name: {label, type, choices, required, description}"),
    BundleKind(name="segment", read=_read_segment, write=_write_segment,
               help="a saved segment: {definition, description} (docs/contacts.md for definitions)"),
)  # fmt: skip


__all__ = ["CORE_KINDS", "Bundle", "BundleItem", "BundleKind", "BundleService", "ItemOutcome", "checksum"]

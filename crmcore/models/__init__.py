"""The core's tables. Plugins add theirs on the same :class:`~crmcore.db.Base`.

``from crmcore.models import Contact`` imports (and maps) only the submodule
that defines ``Contact``: a command maps the tables it uses, not all forty of
the core's (mapping is most of a short command's own start-up time). When
the mappers are configured, before the first query or new object, the tables
that mapped tables point to by foreign key are loaded too, so a flush can
order its inserts. Code that needs every table (migrations, schema checks,
``create_all``) calls :func:`load_all`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from crmcore.db import Base

if TYPE_CHECKING:
    from crmcore.models.capture import Affiliate, ContactAttribution, ConversionAttribution, TrackedLink, WebForm
    from crmcore.models.people import (
        Contact,
        ContactTag,
        CustomField,
        LifecycleChange,
        Organization,
        Role,
        RolePermission,
        Stage,
        Tag,
        Team,
        TeamManager,
        User,
        UserPermission,
    )
    from crmcore.models.privacy import Consent, ConsentEvent, ConsentRequest, Segment
    from crmcore.models.rollup import AttributionDaily, ClickDaily, DirtyDay, RollupState, SaleDaily, TouchDaily
    from crmcore.models.sales import (
        Activity,
        Feedback,
        Opportunity,
        OpportunityStageChange,
        Pipeline,
        PipelineStage,
        Product,
        Purchase,
        PurchaseLine,
    )
    from crmcore.models.system import AuditEntry, BundleRecord, Job, JobState, JobWorker, MailDelivery
    from crmcore.models.tracking import INTERACTION_KINDS, AdSpend, Interaction, TouchKind, Touchpoint

#: The submodules, and the public names and tables each defines (a test keeps these true).
SUBMODULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "people": (
        ("Contact", "ContactTag", "CustomField", "LifecycleChange", "Organization", "Role", "RolePermission",
         "Stage", "Tag", "Team", "TeamManager", "User", "UserPermission"),
        ("contact", "contact_tag", "custom_field", "lifecycle_change", "organization", "crm_role",
         "crm_role_permission", "tag", "team", "crm_team_manager", "crm_user", "crm_user_permission"),
    ),
    "system": (
        ("AuditEntry", "BundleRecord", "Job", "JobState", "JobWorker", "MailDelivery"),
        ("audit_entry", "bundle_record", "job", "job_worker", "mail_delivery"),
    ),
    "sales": (
        ("Activity", "Feedback", "Opportunity", "OpportunityStageChange", "Pipeline", "PipelineStage", "Product",
         "Purchase", "PurchaseLine"),
        ("activity", "feedback", "opportunity", "opportunity_stage_change", "pipeline", "pipeline_stage",
         "product", "purchase", "purchase_line"),
    ),
    "tracking": (
        ("INTERACTION_KINDS", "AdSpend", "Interaction", "TouchKind", "Touchpoint"),
        ("ad_spend", "interaction", "touchpoint"),
    ),
    "capture": (
        ("Affiliate", "ContactAttribution", "ConversionAttribution", "TrackedLink", "WebForm"),
        ("affiliate", "contact_attribution", "conversion_attribution", "tracked_link", "web_form"),
    ),
    "privacy": (
        ("Consent", "ConsentEvent", "ConsentRequest", "Segment"),
        ("consent", "consent_event", "consent_request", "segment"),
    ),
    "rollup": (
        ("AttributionDaily", "ClickDaily", "DirtyDay", "RollupState", "SaleDaily", "TouchDaily"),
        ("report_attribution_daily", "report_click_daily", "report_dirty_day", "report_rollup_state",
         "report_sale_daily", "report_touch_daily"),
    ),
}  # fmt: skip
_MODULE_OF_NAME = {name: module for module, (names, _) in SUBMODULES.items() for name in names}
_MODULE_OF_TABLE = {table: module for module, (_, tables) in SUBMODULES.items() for table in tables}


def load(submodule: str) -> ModuleType:
    """Import (and map) one submodule of the core's models."""
    return importlib.import_module(f"{__name__}.{submodule}")


def load_all() -> list[ModuleType]:
    """Import every submodule: all the core's tables are then on ``Base.metadata``."""
    return [load(submodule) for submodule in SUBMODULES]


def __getattr__(name: str) -> Any:
    submodule = _MODULE_OF_NAME.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(load(submodule), name)
    globals()[name] = value  # later lookups skip this function
    return value


def load_foreign_key_targets() -> None:
    """Load the core tables that mapped tables (the core's or a plugin's) reference.

    A flush sorts every mapped table by its foreign keys and fails on a key
    whose table is not on the metadata. Runs before the mappers are configured
    (a listener in :mod:`crmcore.db`).
    """
    tables = Base.metadata.tables
    while True:
        missing = {
            _MODULE_OF_TABLE[fk.target_fullname.partition(".")[0]]
            for table in list(tables.values())
            for fk in table.foreign_keys
            if fk.target_fullname.partition(".")[0] not in tables
            and fk.target_fullname.partition(".")[0] in _MODULE_OF_TABLE
        }
        if not missing:
            return
        for submodule in missing:
            load(submodule)


__all__ = [
    "INTERACTION_KINDS",
    "SUBMODULES",
    "Activity",
    "AdSpend",
    "Affiliate",
    "AttributionDaily",
    "AuditEntry",
    "BundleRecord",
    "ClickDaily",
    "Consent",
    "ConsentEvent",
    "ConsentRequest",
    "Contact",
    "ContactAttribution",
    "ContactTag",
    "ConversionAttribution",
    "CustomField",
    "DirtyDay",
    "Feedback",
    "Interaction",
    "Job",
    "JobState",
    "JobWorker",
    "LifecycleChange",
    "MailDelivery",
    "Opportunity",
    "OpportunityStageChange",
    "Organization",
    "Pipeline",
    "PipelineStage",
    "Product",
    "Purchase",
    "PurchaseLine",
    "Role",
    "RolePermission",
    "RollupState",
    "SaleDaily",
    "Segment",
    "Stage",
    "Tag",
    "Team",
    "TeamManager",
    "TouchDaily",
    "TouchKind",
    "Touchpoint",
    "TrackedLink",
    "User",
    "UserPermission",
    "WebForm",
    "load",
    "load_all",
    "load_foreign_key_targets",
]

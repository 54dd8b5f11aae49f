"""The core's tables. Plugins add theirs on the same :class:`~crmcore.db.Base`."""

from crmcore.models.capture import Affiliate, ContactAttribution, ConversionAttribution, TrackedLink, WebForm
from crmcore.models.people import (
    Contact,
    ContactTag,
    CustomField,
    LifecycleChange,
    Organization,
    Stage,
    Tag,
    Team,
    User,
)
from crmcore.models.privacy import Consent, ConsentEvent, ConsentRequest, Segment
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

__all__ = [
    "INTERACTION_KINDS",
    "Activity",
    "AdSpend",
    "Affiliate",
    "AuditEntry",
    "BundleRecord",
    "Consent",
    "ConsentEvent",
    "ConsentRequest",
    "Contact",
    "ContactAttribution",
    "ContactTag",
    "ConversionAttribution",
    "CustomField",
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
    "Segment",
    "Stage",
    "Tag",
    "Team",
    "TouchKind",
    "Touchpoint",
    "TrackedLink",
    "User",
    "WebForm",
]

"""The dental clinic bundle: defaults a clinic needs on day one, as plain data.

Treatment plans move through a pipeline from consultation to completed
treatment; patients carry a few custom fields; the front desk answers within
business hours, emergencies faster; patients due for a check-up form a segment
that a recall email targets; a short survey follows every treatment. The
bundle's own wording of the acknowledgement mail overrides ticketing's
(``templates/ticketing/``).
"""

from __future__ import annotations

from pathlib import Path

from crmcore import hookimpl
from crmcore.bundles import Bundle, BundleItem
from crmcore.plugins import PluginInfo

HERE = Path(__file__).resolve().parent
VERSION = "1.0"
plugin_info = PluginInfo(requires=("ticketing", "surveys", "email_marketing"))


def items() -> list[BundleItem]:
    """The bundle's items, version :data:`VERSION`."""
    return [
        BundleItem(kind="pipeline", key="Treatment plans", data={"default": True, "stages": [
            {"key": "consultation", "name": "Consultation booked", "probability": 20, "outcome": "open"},
            {"key": "plan", "name": "Treatment plan sent", "probability": 40, "outcome": "open"},
            {"key": "accepted", "name": "Plan accepted", "probability": 80, "outcome": "open"},
            {"key": "treated", "name": "Treatment completed", "probability": 100, "outcome": "won"},
            {"key": "declined", "name": "Declined", "probability": 0, "outcome": "lost"},
        ]}),
        BundleItem(kind="custom_field", key="contact.date_of_birth",
                   data={"label": "Date of birth", "type": "date", "choices": None, "required": False,
                         "description": "For recall intervals and age-specific treatment."}),
        BundleItem(kind="custom_field", key="contact.insurance",
                   data={"label": "Insurance", "type": "choice", "choices": ["public", "private", "none"],
                         "required": False, "description": "How the patient is insured."}),
        BundleItem(kind="custom_field", key="contact.recall_months",
                   data={"label": "Recall interval (months)", "type": "integer", "choices": None,
                         "required": False, "description": "Months between check-ups."}),
        BundleItem(kind="ticketing.sla_calendar", key="Clinic hours", data={
            "timezone": "Europe/Berlin", "hours": "mon-thu 08:00-18:00; fri 08:00-14:00",
            "holidays": "DE", "region": "BE", "closed_days": []}),
        BundleItem(kind="ticketing.sla_policy", key="Dental emergencies", data={
            "conditions": {"priority": ["urgent"]}, "calendar": "Clinic hours",
            "targets": {"urgent": {"first_reply": "30m", "resolution": "4h"}}, "warnings": ["10m"]}),
        BundleItem(kind="ticketing.sla_policy", key="Front desk", data={
            "calendar": "Clinic hours",
            "targets": {"*": {"first_reply": "4h", "resolution": "3d"}}, "warnings": ["1h"]}),
        BundleItem(kind="segment", key="Recall due", data={
            "description": "Patients whose last treatment was over six months ago.",
            "definition": {"all": [{"field": "stage", "value": "customer"},
                                   {"not": {"purchase": {"within_days": 182}}}]}}),
        BundleItem(kind="email_marketing.template", key="recall-reminder", data={
            "subject": "Time for your check-up, {{ contact.first_name or 'dear patient' }}",
            "html": "<p>Hello {{ contact.first_name or 'there' }},</p><p>your last check-up was six months ago. "
                    "Book your next visit online or call the practice.</p>"}),
        BundleItem(kind="surveys.survey", key="after-treatment", data={
            "key": "after-treatment", "title": {"en": "How was your visit?", "de": "Wie war Ihr Besuch?"},
            "default_language": "en",
            "questions": [
                {"key": "score", "kind": "nps", "required": True,
                 "text": {"en": "How likely are you to recommend our practice?",
                          "de": "Wie wahrscheinlich empfehlen Sie unsere Praxis weiter?"}},
                {"key": "comment", "kind": "text", "text": "Anything we could do better?"},
            ],
            "triggers": [{"hook": "crm_purchase_recorded", "delay": "1d", "sample": "100%"}]}),
    ]  # fmt: skip


@hookimpl
def crm_register_bundles() -> list[Bundle]:
    """The ``dental-clinic`` bundle."""
    return [Bundle(name="dental-clinic", version=VERSION, title="Dental clinic: patients, treatment plans, front desk",
                   items=tuple(items()))]  # fmt: skip


@hookimpl(tryfirst=True)
def crm_register_templates() -> list[Path]:
    """Template overrides (first in the search path): the clinic's own acknowledgement mail."""
    return [HERE / "templates"]

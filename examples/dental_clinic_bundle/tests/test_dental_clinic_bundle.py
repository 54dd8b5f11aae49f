"""The dental clinic bundle: applied once, applied again, upgraded around a user's edit, overriding templates."""

from __future__ import annotations

import email

import attrs
import pytest
from crmcore_bundle_dental_clinic import plugin as dental
from crmcore_email_marketing import email_marketing
from crmcore_surveys import surveys
from crmcore_ticketing import ticketing

from crmcore import CRM, hookimpl
from crmcore.bundles import Bundle
from crmcore.errors import ValidationError
from crmcore.registry import CustomFieldSpec
from crmcore.services.sales import StageSpec

pytestmark = pytest.mark.databases("sqlite", "postgresql", "mariadb")


@pytest.fixture
def crm_plugins() -> list[str]:
    return ["ticketing", "surveys", "email_marketing", "dental_clinic"]


@pytest.fixture
def crm_settings(tmp_path) -> dict:
    return {"mail_dir": str(tmp_path / "outbox"),
            "plugin_settings": {"ticketing": {"attachment_dir": str(tmp_path / "files")}}}  # fmt: skip


class NewerBundle:
    """Version 1.1 of the bundle, as a vendor's update would ship it."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle

    @hookimpl(tryfirst=True)
    def crm_register_bundles(self) -> list[Bundle]:
        return [self.bundle]


def newer(changes: dict[tuple[str, str], dict]) -> Bundle:
    """The bundle's next version: the same items, some with new data."""
    items = tuple(attrs.evolve(i, data=changes.get((i.kind, i.key), i.data)) for i in dental.items())
    return Bundle(name="dental-clinic", version="1.1", title="Dental clinic", items=items)


@pytest.fixture
def after_update(crm, crm_url, clock, crm_settings):
    """A CRM on the same database once the vendor's update is installed (instead of version 1.0)."""
    made = []

    def make(bundle: Bundle) -> CRM:
        plugins = ["ticketing", "surveys", "email_marketing", NewerBundle(bundle)]
        made.append(CRM(database_url=crm_url, plugins=plugins, clock=clock, environment="test", **crm_settings))
        return made[-1]

    yield make
    for other in made:
        other.dispose()


def outcomes(result) -> dict[str, str]:
    return {f"{o.kind} {o.key}": o.outcome for o in result}


def test_applying_creates_everything_and_applying_again_changes_nothing(crm, cli):
    first = cli("bundle", "apply", "dental-clinic")
    assert first.exit_code == 0, first.output
    assert set(outcomes(crm.bundles.apply("dental-clinic")).values()) == {"unchanged"}
    assert [s.key for s in crm.sales.stages()] == ["consultation", "plan", "accepted", "treated", "declined"]
    fields = {f.name: f for f in crm.custom_fields.list()}
    assert fields["insurance"].choices == ["public", "private", "none"]
    assert [p.name for p in ticketing(crm).sla.policies()] == ["Dental emergencies", "Front desk"]
    assert crm.segments.get("Recall due").description.startswith("Patients")
    assert email_marketing(crm).templates.get("recall-reminder").subject.startswith("Time for your check-up")
    assert str(surveys(crm).surveys.get("after-treatment").state) == "active"
    listed = cli("bundle", "list", "--format", "json")
    assert '"applied": "1.0"' in listed.output


def test_dry_run_reports_and_writes_nothing(crm, cli):
    result = cli("bundle", "apply", "dental-clinic", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    assert ticketing(crm).sla.policies() == []
    assert crm.bundles.applied_version("dental-clinic") is None


def test_a_newer_version_upgrades_what_it_owns_and_keeps_a_users_edit(crm, after_update):
    crm.bundles.apply("dental-clinic")
    # The clinic's admin renames a stage of the bundle's pipeline by hand.
    stages = [StageSpec(**s) for s in dental.items()[0].data["stages"]]
    stages[0] = attrs.evolve(stages[0], name="First visit")
    crm.sales.define_pipeline("Treatment plans", stages, default=True)
    # The vendor's next version changes the pipeline, a field and the front-desk policy.
    pipeline_v2 = {**dental.items()[0].data}
    pipeline_v2["stages"] = [*pipeline_v2["stages"][:3], {"key": "xray", "name": "X-ray done", "probability": 60,
                                                           "outcome": "open"}, *pipeline_v2["stages"][3:]]
    front_desk_v2 = {"calendar": "Clinic hours", "targets": {"*": {"first_reply": "2h", "resolution": "3d"}},
                     "warnings": ["30m"]}
    bundle = newer({("pipeline", "Treatment plans"): pipeline_v2,
                    ("custom_field", "contact.recall_months"): {"label": "Recall (months)", "type": "integer",
                                                                "choices": None, "required": False,
                                                                "description": "Months between check-ups."},
                    ("ticketing.sla_policy", "Front desk"): front_desk_v2})  # fmt: skip
    upgraded = after_update(bundle)
    result = outcomes(upgraded.bundles.apply("dental-clinic"))
    assert result["pipeline Treatment plans"] == "kept"  # the admin's rename wins
    assert result["custom_field contact.recall_months"] == "upgraded"
    assert result["ticketing.sla_policy Front desk"] == "upgraded"
    assert result["ticketing.sla_policy Dental emergencies"] == "unchanged"
    assert upgraded.sales.stages()[0].name == "First visit"
    assert "xray" not in [s.key for s in upgraded.sales.stages()]
    assert {f.name: f.label for f in upgraded.custom_fields.list()}["recall_months"] == "Recall (months)"
    front = ticketing(upgraded).sla.policy("Front desk")
    assert {spec["first_reply"]["minutes"] for spec in front.targets.values()} == {120}
    assert upgraded.bundles.applied_version("dental-clinic") == "1.1"
    assert set(outcomes(upgraded.bundles.apply("dental-clinic")).values()) <= {"unchanged", "kept"}


def test_an_item_the_owner_refuses_rolls_the_whole_apply_back(crm_factory):
    broken = newer({("ticketing.sla_policy", "Front desk"): {"calendar": "Clinic hours",
                                                             "targets": {"*": {"first_reply": "soon"}}}})
    other = crm_factory(plugins=["ticketing", "surveys", "email_marketing", NewerBundle(broken)])
    with pytest.raises(ValidationError) as refused:
        other.bundles.apply("dental-clinic")
    assert "ticketing.sla_policy Front desk" in refused.value.errors
    assert ticketing(other).sla.policies() == []
    assert other.custom_fields.list() == []  # nothing from the items before it either


def test_an_existing_item_not_made_by_the_bundle_is_kept(crm):
    crm.custom_fields.define(CustomFieldSpec(name="insurance", label="Insurer", type="text"))
    result = outcomes(crm.bundles.apply("dental-clinic"))
    assert result["custom_field contact.insurance"] == "kept"
    assert {f.name: f.type for f in crm.custom_fields.list()}["insurance"] == "text"


def test_the_bundles_template_overrides_ticketings_acknowledgement(crm, tmp_path):
    crm.bundles.apply("dental-clinic")
    ticketing(crm).tickets.open(subject="Toothache", body="It hurts since yesterday.", requester="pat@example.com",
                                channel="web")  # fmt: skip
    sent = crm.jobs.run_due()
    assert sent >= 1
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    messages = [email.message_from_bytes(f.read_bytes()) for f in files]
    body = next(m for m in messages if "Toothache" in m["Subject"]).get_payload(decode=True).decode()
    assert "thank you for contacting the practice" in body
    assert "dental emergency" in body


def test_an_unknown_bundle_names_the_installed_ones(cli):
    result = cli("bundle", "apply", "bakery")
    assert result.exit_code != 0
    assert "dental-clinic" in result.output

"""Survey definitions: YAML and JSON files, validation with locations, states, the CLI."""

from __future__ import annotations

import json

import pytest
from crmcore_surveys.definition import category, translate, validate

from crmcore.errors import Conflict, NotFound, ValidationError


def test_a_yaml_definition_becomes_a_draft_survey_with_its_translations(service, data):
    survey = service.surveys.create(data / "support-csat.yaml")
    assert (survey.key, survey.state, survey.headline_kind, survey.title) == (
        "support-csat",
        "draft",
        "csat",
        "How did we do?",
    )
    question = survey.definition["questions"][0]
    assert translate(question["text"], "de-CH", "en") == "Wie zufrieden sind Sie mit unserem Support?"
    assert translate(question["text"], "fr", "en") == "How satisfied are you with the support you got?"
    # a plain string is the default language's text; a language it lacks falls back to it
    assert translate(survey.definition["questions"][2]["text"], "de", "en") == "Was können wir besser machen?"
    assert translate(survey.definition["questions"][1]["text"], "de", "en") == "Was it fast enough?"
    assert [c["value"] for c in survey.definition["questions"][1]["choices"]] == ["yes", "no"]
    assert survey.definition["triggers"] == [{"hook": "crm_ticket_solved", "delay": 7200, "sample": 1.0, "when": {}}]


def test_an_unknown_question_kind_is_refused_with_its_location_and_line(service, data):
    with pytest.raises(ValidationError) as caught:
        service.surveys.create(data / "bad-kind.yaml")
    assert caught.value.errors == {
        "questions[1].kind": "unknown question kind 'stars'; kinds: nps, csat, ces, single, multiple, text "
                             "(bad-kind.yaml line 8)"}  # fmt: skip
    assert service.surveys.list() == []


def test_a_json_definition_and_every_error_at_once(service, tmp_path, nps_definition):
    path = tmp_path / "nps.json"
    path.write_text(json.dumps(nps_definition))
    assert service.surveys.create(path).headline_kind == "nps"
    broken = {
        "key": "Bad Key",
        "title": "",
        "questions": [{"kind": "single", "text": "Pick", "choices": ["one"]}],
        "triggers": [{"hook": "crm_purchase_recorded", "sample": 2, "delay": "soon"}],
        "colour": "red",
    }
    with pytest.raises(ValidationError) as caught:
        validate(broken)
    assert set(caught.value.errors) == {"key", "title", "questions[0].choices", "triggers[0].sample",
                                        "triggers[0].delay", "colour"}  # fmt: skip
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"key": "x",\n "title": }')
    with pytest.raises(ValidationError, match=r"bad\.json line 2"):
        service.surveys.create(bad_json)


def test_trigger_hooks_must_be_published_unless_their_plugin_is_absent(service, crm, nps_definition):
    nps_definition["triggers"] = [{"hook": "crm_purchase_recordd"}]
    with pytest.raises(ValidationError) as caught:
        service.surveys.create(nps_definition)
    assert caught.value.errors == {
        "triggers[0].hook": "no enabled plugin publishes crm_purchase_recordd (did you mean crm_purchase_recorded?)"
    }
    nps_definition["triggers"] = [{"hook": "crm_lead_captured"}]
    with pytest.raises(ValidationError, match="add it to the surveys setting trigger_hooks"):
        service.surveys.create(nps_definition)
    # ticketing is not enabled here: its trigger is kept but dormant, not an error
    nps_definition["triggers"] = [{"hook": "crm_ticket_solved"}, {"hook": "crm_purchase_recorded", "delay": "1d"}]
    service.surveys.create(nps_definition)
    shown = service.surveys.describe("nps")
    assert [(t["hook"], t["active"]) for t in shown["triggers"]] == [
        ("crm_ticket_solved", False),
        ("crm_purchase_recorded", True),
    ]


def test_states_draft_active_closed(service, nps_definition):
    service.surveys.create(nps_definition)
    with pytest.raises(Conflict, match="already exists"):
        service.surveys.create(nps_definition)
    nps_definition["title"] = "Recommend us?"
    assert service.surveys.create(nps_definition, replace=True).title == "Recommend us?"
    assert service.surveys.activate("nps").state == "active"
    with pytest.raises(Conflict, match="only a draft can be replaced"):
        service.surveys.create(nps_definition, replace=True)
    assert service.surveys.close("nps").state == "closed"
    with pytest.raises(Conflict, match="closed"):
        service.surveys.activate("nps")
    with pytest.raises(NotFound):
        service.surveys.get("nope")


def test_scores_fall_into_categories():
    assert [category("nps", s) for s in (0, 6, 7, 8, 9, 10)] == [
        "detractor",
        "detractor",
        "passive",
        "passive",
        "promoter",
        "promoter",
    ]
    assert [category("csat", s) for s in (1, 2, 3, 4, 5)] == [
        "detractor",
        "detractor",
        "passive",
        "promoter",
        "promoter",
    ]
    assert [category("ces", s) for s in (3, 4, 5)] == ["detractor", "passive", "promoter"]
    assert category("text", 3) is None


def test_the_cli_creates_lists_shows_activates_and_closes(cli, data):
    created = cli("survey", "create", "--file", str(data / "support-csat.yaml"))
    assert created.exit_code == 0, created.output
    assert "created survey support-csat (draft)" in created.output
    assert cli("survey", "activate", "support-csat").exit_code == 0
    listed = cli("survey", "list", "--format", "json")
    assert [(s["key"], s["state"]) for s in json.loads(listed.output)] == [("support-csat", "active")]
    shown = cli("survey", "show", "support-csat")
    assert "score (csat, required)" in shown.output and "dormant" in shown.output
    closed = cli("survey", "close", "support-csat")
    assert closed.exit_code == 0 and "is closed" in closed.output
    bad = cli("survey", "create", "--file", str(data / "bad-kind.yaml"))
    assert bad.exit_code == 1 and "unknown question kind 'stars'" in bad.output
    assert "questions[1].kind" in bad.output

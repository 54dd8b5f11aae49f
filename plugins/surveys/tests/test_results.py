"""Results in SQL: NPS, CSAT %, CES average, response rate, distributions, verbatims; CLI formats."""

from __future__ import annotations

import csv
import io
import json

import pytest
from crmcore_surveys.service import invitation_url

from crmcore import hookimpl
from crmcore.errors import ValidationError

CSAT = {"key": "csat", "title": "Support", "questions": [{"key": "score", "kind": "csat", "text": "Satisfied?"}]}
CES = {"key": "ces", "title": "Effort", "questions": [{"key": "score", "kind": "ces", "text": "Easy?"}]}


class Segments:
    @hookimpl
    def crm_segment_query(self, name, ctx):
        from sqlalchemy import select

        from crmcore.models import Contact

        return select(Contact.id).where(Contact.country == {"germans": "DE", "french": "FR"}[name])

    @hookimpl
    def crm_segment_names(self, ctx):
        return ["germans", "french"]


@pytest.fixture
def crm_plugins():
    return ["surveys", Segments()]


@pytest.fixture
def crm_settings():
    return {"plugin_settings": {"surveys": {"quiet_days": 0}}}


def answer(crm, service, survey, email, country, values, run_due_jobs):
    contact = crm.leads.capture(email=email, country=country)
    crm.consent.grant(contact.id, "surveys", "email", source="test")
    invitation = service.surveys.invite(survey, contact.id)
    run_due_jobs()
    if values is not None:
        service.answers.submit(invitation_url(crm, invitation.id).rsplit("/", 1)[1], values)
    return contact


@pytest.fixture
def answered(crm, service, nps, run_due_jobs, clock):
    """NPS: 10, 9, 8, 3 and one unanswered invitation (in January); one 0 in February."""
    for n, (score, country) in enumerate([(10, "DE"), (9, "DE"), (8, "FR"), (3, "FR")]):
        answer(crm, service, "nps", f"n{n}@example.com", country,
               {"score": score, "why": f"<i>reason {n}</i>", "liked": ["price"] if n % 2 else ["speed", "price"]},
               run_due_jobs)  # fmt: skip
    answer(crm, service, "nps", "silent@example.com", "DE", None, run_due_jobs)
    clock.advance(days=31)
    answer(crm, service, "nps", "late@example.com", "DE", {"score": 0}, run_due_jobs)
    for survey, data, scores in (("csat", CSAT, (5, 4, 2, 1)), ("ces", CES, (7, 5, 4, 2))):
        service.surveys.create(data)
        service.surveys.activate(survey)
        for n, score in enumerate(scores):
            answer(crm, service, survey, f"{survey}{n}@example.com", "DE", {"score": score}, run_due_jobs)


def test_nps_csat_ces_and_response_rate(crm, answered):
    result = crm.reports.run("surveys.results", by="survey")
    rows = {row["survey"]: row for row in result.rows}
    nps = rows["nps"]
    assert (nps["invitations"], nps["responses"], nps["response_rate"]) == (6, 5, pytest.approx(5 / 6, abs=1e-6))
    # 2 promoters, 1 passive, 2 detractors of 5: NPS 0
    assert (nps["nps"], nps["promoters"], nps["passives"], nps["detractors"]) == (0.0, 0.4, 0.2, 0.4)
    assert nps["csat"] is None and nps["ces"] is None
    assert rows["csat"]["csat"] == 0.5 and rows["csat"]["nps"] is None
    assert rows["ces"]["ces"] == 4.5


def test_over_time_and_by_segment(crm, answered, cli):
    monthly = crm.reports.run("surveys.results", by="month", params={"survey": "nps"})
    assert [(r["month"], r["responses"], r["nps"]) for r in monthly.rows] == [("2026-01", 4, 25.0),
                                                                              ("2026-02", 1, -100.0)]  # fmt: skip
    germans = crm.reports.run("surveys.results", segment="germans", params={"survey": "nps"})
    assert [(r["survey"], r["invitations"], r["responses"], r["nps"]) for r in germans.rows] == [
        ("nps", 4, 3, pytest.approx(100 / 3, abs=1e-3))
    ]
    out = cli("survey", "results", "nps", "--by", "segment", "--format", "json")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)["rows"]
    assert [(r["segment"], r["responses"]) for r in rows] == [("french", 2), ("germans", 3)]


def test_distribution_and_verbatims_escape_html(crm, answered, cli):
    scores = crm.reports.run("surveys.distribution", params={"survey": "nps"})
    assert [(r["answer"], r["answers"]) for r in scores.rows] == [("0", 1), ("3", 1), ("8", 1), ("9", 1), ("10", 1)]
    liked = cli("survey", "results", "nps", "--question", "liked", "--format", "csv")
    assert list(csv.DictReader(io.StringIO(liked.output))) == [
        {"answer": "price", "answers": "4", "share": "0.666667"},
        {"answer": "speed", "answers": "2", "share": "0.333333"},
    ]
    words = cli("survey", "results", "nps", "--question", "why", "--format", "json")
    assert [r["answer"] for r in json.loads(words.output)["rows"]] == [f"<i>reason {n}</i>" for n in (3, 2, 1, 0)]
    page = cli("survey", "results", "nps", "--question", "why", "--format", "html")
    assert page.exit_code == 0 and "&lt;i&gt;reason 3&lt;/i&gt;" in page.output and "<i>reason" not in page.output
    with pytest.raises(ValidationError, match="questions: score, liked"):
        crm.reports.run("surveys.distribution", params={"survey": "nps", "question": "why"})


def test_the_cli_formats(cli, answered, tmp_path):
    table = cli("survey", "results", "nps", "--by", "month")
    assert table.exit_code == 0 and "2026-01" in table.output and "NPS" in table.output
    out = tmp_path / "nps.html"
    html = cli("survey", "results", "nps", "--format", "html", "--output", str(out))
    assert html.exit_code == 0 and "<svg" in out.read_text() and "<script" not in out.read_text()
    bad = cli("survey", "results", "nps", "--by", "colour")
    assert bad.exit_code == 1 and "unknown grouping 'colour'" in bad.output
    assert "surveys.results" in cli("report", "list").output

"""The results' daily rollup gives exactly what the raw rows give, through every write and a rebuild."""

from __future__ import annotations

import random

import pytest
from crmcore_surveys import reports, rollup
from crmcore_surveys.models import DailyResults, Invitation
from crmcore_surveys.service import get_survey, invitation_url, invite_in
from sqlalchemy import func, select

from crmcore.reports.render import render
from crmcore.reports.sql import PERIODS

CSAT = {"key": "csat", "title": "Support", "questions": [{"key": "score", "kind": "csat", "text": "Satisfied?"}]}
CES = {"key": "ces", "title": "Effort", "questions": [{"key": "score", "kind": "ces", "text": "Easy?"}]}
SCALES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
RANGES = ((None, None), ("2026-01-06", "2026-01-09"), ("2026-01-08", None))


@pytest.fixture
def crm_settings():
    # days cut at New York's midnight, not UTC's: the clock moves by odd hours across both
    return {"timezone": "America/New_York", "plugin_settings": {"surveys": {"quiet_days": 0}}}


def token(crm, invitation_id):
    return invitation_url(crm, invitation_id).rsplit("/", 1)[1]


def traffic(crm, service, clock, run_due_jobs, rng, count, agents):
    """*count* invitations to random surveys, agents, products and channels; most answered, some twice."""
    for n in range(count):
        contact = crm.leads.capture(email=f"p{rng.random():.12f}@example.com")
        crm.consent.grant(contact.id, "surveys", "email", source="test")
        key = rng.choice(list(SCALES))
        with crm.transaction() as ctx:
            invitation, _ = invite_in(
                ctx, get_survey(ctx, key), ctx.session.get(type(contact), contact.id), source="test",
                agent_id=rng.choice([*agents, None]), product=rng.choice(["A", "B", None]),
                channel=rng.choice(["email", "chat"]),
            )  # fmt: skip
            invitation_id = invitation.id
        clock.advance(hours=rng.randint(1, 9))
        run_due_jobs()
        low, high = SCALES[key]
        if n % 5 != 0:
            service.answers.submit(token(crm, invitation_id), {"score": rng.randint(low, high)})
        if n % 4 == 1:  # a change of mind: the page again, or the email's score link
            if key == "ces":
                service.answers.submit(token(crm, invitation_id), {"score": rng.randint(low, high)})
            else:
                service.answers.score(token(crm, invitation_id), rng.randint(low, high))


def assert_rollup_matches_raw(crm, monkeypatch):
    """Every grouping, range and survey filter: the same rows and the same table and CSV output."""
    for by in (*reports.GROUPS, *PERIODS):
        for start, end in RANGES:
            for params in ({}, {"survey": "nps"}, {"survey": "csat"}):
                fast = crm.reports.run("surveys.results", by=by, start=start, end=end, params=params)
                with monkeypatch.context() as patch:
                    patch.setattr(reports, "uses_rollup", lambda query: False)
                    raw = crm.reports.run("surveys.results", by=by, start=start, end=end, params=params)
                assert fast.rows == raw.rows, (by, start, end, params)
                for fmt in ("table", "csv"):
                    assert render(crm, fast, fmt) == render(crm, raw, fmt)


def rollup_rows(crm):
    with crm.engine.connect() as connection:
        keys = (DailyResults.survey_id, DailyResults.day, DailyResults.dimension, DailyResults.agent_id,
                DailyResults.product, DailyResults.channel, DailyResults.language)  # fmt: skip
        sums = [func.sum(getattr(DailyResults, m)) for m in rollup.MEASURES]
        rows = connection.execute(select(*keys, *sums).group_by(*keys)).all()
    return sorted((tuple(r) for r in rows if any(r[len(keys) :])), key=repr)


def test_rollup_results_equal_the_raw_computation(crm, service, nps, clock, run_due_jobs, monkeypatch, cli):
    assert service.surveys.rebuild_rollup() == 0  # the template was migrated in another zone
    for data in (CSAT, CES):
        service.surveys.create(data)
        service.surveys.activate(data["key"])
    agents = [crm.users.add(f"agent{n}@example.com", f"Agent {n}", role="agent").id for n in range(2)]
    rng = random.Random(7)
    traffic(crm, service, clock, run_due_jobs, rng, 40, agents)
    with crm.transaction(readonly=True) as ctx:
        assert rollup.zone_of(ctx.session) == "America/New_York"
        sent = ctx.scalar(select(func.count()).select_from(Invitation).where(Invitation.status == "sent"))
        assert ctx.scalar(select(func.sum(DailyResults.invitations)).where(DailyResults.dimension == "all")) == sent
    assert_rollup_matches_raw(crm, monkeypatch)

    # an erased respondent's scores still count; new answers the same day and later keep it exact
    answered = service.surveys.responses("nps")[0]
    crm.contacts.erase(answered.contact_id)
    traffic(crm, service, clock, run_due_jobs, rng, 12, agents)
    assert_rollup_matches_raw(crm, monkeypatch)

    # a rebuild from the raw rows finds exactly what the writes kept
    kept = rollup_rows(crm)
    out = cli("survey", "rollup")
    assert out.exit_code == 0 and "(America/New_York)" in out.output, out.output
    assert rollup_rows(crm) == kept
    assert_rollup_matches_raw(crm, monkeypatch)


def test_results_fall_back_to_the_raw_rows_in_another_zone(crm, service, nps, clock, run_due_jobs, cli):
    """A rollup cut in another zone (the CRM's zone changed) is not read until it is rebuilt."""
    customer = crm.leads.capture(email="late@example.com")
    crm.consent.grant(customer.id, "surveys", "email", source="test")
    invitation = service.surveys.invite("nps", customer.id)
    run_due_jobs()
    with crm.transaction() as ctx:
        rollup.rebuild(ctx.session.connection(), "Asia/Tokyo", ctx.now)
    clock.advance(hours=19)  # 2026-01-06 04:00 UTC: the 6th in Tokyo, still the 5th in New York
    service.answers.submit(token(crm, invitation.id), {"score": 9})
    by_day = crm.reports.run("surveys.results", by="day", params={"survey": "nps"})
    assert [(r["day"], r["invitations"], r["responses"]) for r in by_day.rows] == [("2026-01-05", 1, 1)]
    assert cli("survey", "rollup").exit_code == 0
    assert crm.reports.run("surveys.results", by="day", params={"survey": "nps"}).rows == by_day.rows

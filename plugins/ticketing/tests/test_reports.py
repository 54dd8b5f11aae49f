"""Service numbers: reply and resolution times, SLA attainment, volume, backlog age, agent load."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crmcore_ticketing import reports

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
WEEK = (MONDAY, MONDAY + timedelta(days=7))


def test_service_numbers(support, standard_policy, agent, lead_agent, clock):
    # Monday 10:00 Berlin: an email ticket answered after 1h, solved after 3h (2h of business time)
    quick = support.tickets.open(subject="Quick", body="?", requester="a@example.com", channel="email",
                                 assignee=agent.email, category="question")  # fmt: skip
    # a phone ticket answered the next morning: 7h business, 24h calendar (late: target 4h)
    slow = support.tickets.open(subject="Slow", body="?", requester="b@example.com", channel="phone",
                                assignee=agent.email, category="incident")  # fmt: skip
    old = support.tickets.open(subject="Old", body="?", requester="c@example.com", channel="email",
                               assignee=lead_agent.email, category="incident")  # fmt: skip
    clock.advance(hours=1)
    support.tickets.reply(quick.number, "Answer", actor=agent.email)
    clock.advance(hours=2)
    support.tickets.set_status(quick.number, "solved")
    clock.set(datetime(2026, 1, 6, 9, 0, tzinfo=UTC))  # Tuesday 10:00 Berlin
    support.tickets.reply(slow.number, "Sorry", status="pending", actor=agent.email)

    first = reports.first_reply_times(support.crm, *WEEK)
    assert first == [{"count": 2, "avg_business_minutes": 240.0, "max_business_minutes": 420.0,
                      "avg_calendar_minutes": 750.0, "max_calendar_minutes": 1440.0}]  # fmt: skip
    by_channel = reports.first_reply_times(support.crm, *WEEK, by="channel")
    assert [(r["channel"], r["count"], r["avg_business_minutes"]) for r in by_channel] == [
        ("email", 1, 60.0),
        ("phone", 1, 420.0),
    ]
    [resolution] = reports.resolution_times(support.crm, *WEEK)
    # solved Monday 13:00 Berlin: 3h of calendar time, 2h of business time (the lunch break does not count)
    assert (resolution["count"], resolution["avg_business_minutes"], resolution["avg_calendar_minutes"]) == (
        1,
        120.0,
        180.0,
    )
    attainment = {(r["policy"], r["priority"], r["metric"]): r for r in reports.sla_attainment(support.crm, *WEEK)}
    assert attainment["Standard", "normal", "first_reply"]["attainment_percent"] == 50.0
    assert attainment["Standard", "normal", "resolution"]["met"] == 1
    volume = reports.volume(support.crm, *WEEK)
    assert volume == [{"channel": "email", "category": "incident", "tickets": 1},
                      {"channel": "email", "category": "question", "tickets": 1},
                      {"channel": "phone", "category": "incident", "tickets": 1}]  # fmt: skip
    clock.set(datetime(2026, 1, 9, 9, 0, tzinfo=UTC))
    backlog = reports.backlog_age(support.crm)
    assert [(r["status"], r["age"], r["tickets"]) for r in backlog] == [
        ("new", "3-7 days", 1),
        ("pending", "3-7 days", 1),
    ]
    load = reports.agent_load(support.crm, MONDAY)
    assert load == [{"agent": "agent@example.com", "open": 0, "pending": 1, "on_hold": 0, "solved": 1},
                    {"agent": "lead@example.com", "open": 1, "pending": 0, "on_hold": 0, "solved": 0}]  # fmt: skip
    assert old.id


def test_the_reports_are_registered_with_the_report_framework(support, standard_policy, agent, clock, cli):
    crm = support.crm
    quick = support.tickets.open(subject="Quick", body="?", requester="a@example.com", channel="email",
                                 assignee=agent.email)  # fmt: skip
    slow = support.tickets.open(subject="Slow", body="?", requester="b@example.com", channel="phone")
    clock.advance(hours=1)
    support.tickets.reply(quick.number, "Answer", status="solved", actor=agent.email)
    clock.set(datetime(2026, 1, 6, 9, 0, tzinfo=UTC))  # Tuesday 10:00 Berlin: 7 business hours later
    support.tickets.reply(slow.number, "Sorry", actor=agent.email)
    names = {r.name for r in crm.reports.list() if r.plugin == "ticketing"}
    assert names == {"ticketing.first_reply", "ticketing.resolution", "ticketing.sla", "ticketing.volume",
                     "ticketing.backlog", "ticketing.agents"}  # fmt: skip
    first = crm.reports.run("ticketing.first_reply", start="2026-01-01", end="2026-01-31", by="channel")
    assert [(r["channel"], r["tickets"], r["avg_business_hours"], r["avg_calendar_hours"]) for r in first.rows] == [
        ("email", 1, 1.0, 1.0), ("phone", 1, 7.0, 24.0)]  # fmt: skip
    sla = crm.reports.run("ticketing.sla", by="metric", params={"metric": "first_reply"})
    assert [(r["metric"], r["completed"], r["met"], r["breached"], r["attainment"]) for r in sla.rows] == [
        ("first_reply", 2, 1, 1, 0.5)]  # fmt: skip
    backlog = crm.reports.run("ticketing.backlog", by="status")
    assert [(r["status"], r["tickets"]) for r in backlog.rows] == [("open", 1)]
    agents = crm.reports.run("ticketing.agents", start="2026-01-05", end="2026-01-05")
    by_agent = {r["agent"]: (r["open"], r["pending"], r["on_hold"], r["solved"]) for r in agents.rows}
    assert by_agent == {"(unassigned)": (1, 0, 0, 0), "agent@example.com": (0, 0, 0, 1)}
    volume = cli("report", "run", "ticketing.volume", "--by", "day", "--from", "2026-01-05", "--to", "2026-01-06",
                 "--format", "json")  # fmt: skip
    assert volume.exit_code == 0, volume.output
    assert '"tickets": 2' in volume.output

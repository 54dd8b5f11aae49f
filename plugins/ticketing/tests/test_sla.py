"""SLA worked examples, one per rule of the metric model (docs/plugins/ticketing.md explains each).

The ``clock`` fixture starts on Monday 5 January 2026, 09:00 UTC = 10:00 in Berlin. The
Berlin calendar is open Mon-Fri 09:00-12:00 and 13:00-17:00 with Berlin's holidays.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crmcore import hookimpl
from crmcore.errors import ValidationError


def berlin_time(text: str) -> datetime:
    return datetime.fromisoformat(text + "+01:00").astimezone(UTC)


def metric(support, number, name, cycle=None):
    rows = [r for r in support.tickets.sla(number) if r["metric"] == name and (cycle is None or r["cycle"] == cycle)]
    assert rows, f"no {name} metric on {number}"
    return rows[-1]


def open_ticket(support, **extra):
    values = {"subject": "Printer on fire", "body": "Help!", "requester": "ada@example.com", "channel": "email"}
    return support.tickets.open(**{**values, **extra})


def test_a_ticket_created_outside_business_hours_starts_counting_at_the_next_opening(support, standard_policy, clock):
    clock.set(berlin_time("2026-01-10T11:00"))  # Saturday
    ticket = open_ticket(support)
    # Monday 09:00 + 4h: 09:00-12:00, lunch, 13:00-14:00
    assert metric(support, ticket.number, "first_reply")["due_at"] == berlin_time("2026-01-12T14:00")
    explained = "\n".join(support.tickets.explain(ticket.number))
    assert "counting starts at the next opening, Mon 2026-01-12 09:00" in explained


def test_first_reply_is_met_by_the_first_public_agent_reply_not_a_note(support, standard_policy, agent, clock):
    ticket = open_ticket(support)
    clock.advance(minutes=30)
    support.tickets.note(ticket.number, "Checking the logs", actor=agent.email)
    assert metric(support, ticket.number, "first_reply")["fulfilled_at"] is None
    clock.advance(minutes=30)
    support.tickets.reply(ticket.number, "We are on it.", actor=agent.email)
    first = metric(support, ticket.number, "first_reply")
    assert first["fulfilled_at"] == clock.now() and first["state"] == "fulfilled" and not first["late"]
    assert first["elapsed_minutes"] == 60


def test_when_an_agent_opens_the_ticket_with_a_public_message_the_second_reply_counts(support, standard_policy, agent,
                                                                                      clock):  # fmt: skip
    ticket = support.tickets.open(
        subject="Your renewal",
        body="Your plan renews next week.",
        requester="ada@example.com",
        channel="phone",
        actor=agent.email,
    )
    assert metric(support, ticket.number, "first_reply")["state"] == "active"
    clock.advance(hours=1)
    support.tickets.reply(ticket.number, "Following up on our call.", actor=agent.email)
    assert metric(support, ticket.number, "first_reply")["fulfilled_at"] == clock.now()


def test_next_reply_runs_from_the_oldest_unanswered_customer_message(support, standard_policy, agent, clock):
    ticket = open_ticket(support)
    support.tickets.reply(ticket.number, "Which model?", actor=agent.email)
    clock.set(berlin_time("2026-01-05T11:00"))
    support.tickets.customer_message(ticket.number, "The LaserJet 4000", channel="email")
    first_due = metric(support, ticket.number, "next_reply")["due_at"]
    assert first_due == berlin_time("2026-01-06T12:00")  # 11-12, 13-17, then 09-12 on Tuesday = 8h
    clock.set(berlin_time("2026-01-05T15:00"))
    support.tickets.customer_message(ticket.number, "Hello? It is smoking now.", channel="email")
    assert metric(support, ticket.number, "next_reply")["due_at"] == first_due  # not restarted
    assert len([r for r in support.tickets.sla(ticket.number) if r["metric"] == "next_reply"]) == 1
    clock.set(berlin_time("2026-01-05T16:00"))
    support.tickets.reply(ticket.number, "Unplug it.", actor=agent.email)
    done = metric(support, ticket.number, "next_reply", cycle=1)
    assert done["fulfilled_at"] == clock.now() and done["elapsed_minutes"] == 240
    support.tickets.customer_message(ticket.number, "Done.", channel="email")
    assert metric(support, ticket.number, "next_reply", cycle=2)["state"] == "active"


def test_pausing_shifts_the_deadline_by_the_business_time_spent_paused(support, standard_policy, agent, clock):
    ticket = open_ticket(support)  # Monday 10:00 Berlin
    assert metric(support, ticket.number, "resolution")["due_at"] == berlin_time("2026-01-08T14:00")
    clock.set(berlin_time("2026-01-05T11:00"))
    support.tickets.reply(ticket.number, "Can you send a photo?", status="pending", actor=agent.email)
    assert metric(support, ticket.number, "resolution")["state"] == "paused"
    assert metric(support, ticket.number, "resolution")["due_at"] is None
    clock.set(berlin_time("2026-01-06T11:00"))
    support.tickets.customer_message(ticket.number, "Here it is.", channel="email")  # reopens: pending -> open
    resolution = metric(support, ticket.number, "resolution")
    # paused Monday 11:00 to Tuesday 11:00 = 1h + 4h + 2h = 7h of business time
    assert resolution["paused_minutes"] == 7 * 60
    assert resolution["due_at"] == berlin_time("2026-01-09T14:00")
    explained = "\n".join(support.tickets.explain(ticket.number))
    assert "7h of business time added to the deadline" in explained


def test_a_breached_metric_stays_breached_through_a_pause(support, standard_policy, agent, clock, run_due_jobs):
    ticket = open_ticket(support)
    clock.set(berlin_time("2026-01-05T15:00"))
    run_due_jobs()
    assert metric(support, ticket.number, "first_reply")["breached_at"] == berlin_time("2026-01-05T15:00")
    support.tickets.set_status(ticket.number, "on_hold")
    clock.set(berlin_time("2026-01-06T10:00"))
    support.tickets.set_status(ticket.number, "open")
    first = metric(support, ticket.number, "first_reply")
    assert first["breached_at"] == berlin_time("2026-01-05T15:00") and first["late"]
    # the breach came before the pause, so the pause cannot move it (nor hide it)
    assert first["due_at"] == berlin_time("2026-01-05T15:00") and first["paused_minutes"] == 3 * 60


def test_a_priority_change_retargets_from_the_original_start(support, berlin, clock, hook_calls):
    support.sla.add_policy(
        "Standard",
        calendar="Berlin office",
        targets={"normal": {"first_reply": "4h"}, "high": {"first_reply": "2h"}, "urgent": {"first_reply": "1h"}},
    )
    ticket = open_ticket(support)  # Monday 10:00
    clock.set(berlin_time("2026-01-05T10:30"))
    support.tickets.update(ticket.number, priority="high")
    assert metric(support, ticket.number, "first_reply")["due_at"] == berlin_time("2026-01-05T12:00")
    clock.set(berlin_time("2026-01-05T11:30"))
    hook_calls.clear()
    support.tickets.update(ticket.number, priority="urgent")  # due 11:00: already past
    first = metric(support, ticket.number, "first_reply")
    assert first["due_at"] == berlin_time("2026-01-05T11:00")
    assert first["breached_at"] == berlin_time("2026-01-05T11:00")
    assert [c["event"].metric for c in hook_calls.of("crm_ticket_sla_breached")] == ["first_reply"]
    history = [(h.field, h.new_value) for h in support.tickets.history(ticket.number)]
    assert ("priority", "urgent") in history


def test_reopening_resumes_the_resolution_clock_where_it_stopped(support, standard_policy, agent, clock, hook_calls):
    ticket = open_ticket(support)  # Monday 10:00
    clock.set(berlin_time("2026-01-05T12:00"))
    support.tickets.reply(ticket.number, "Fixed.", status="solved", actor=agent.email)
    solved = metric(support, ticket.number, "resolution")
    assert solved["state"] == "fulfilled" and solved["elapsed_minutes"] == 120
    assert "crm_ticket_solved" in hook_calls.names()
    clock.set(berlin_time("2026-01-07T10:00"))  # Wednesday
    support.tickets.customer_message(ticket.number, "It is broken again.", channel="email")
    resumed = metric(support, ticket.number, "resolution")
    assert resumed["state"] == "active" and resumed["fulfilled_at"] is None
    assert resumed["elapsed_minutes"] == 120
    # 22h left from Wednesday 10:00: Wed 6h, Thu 7h, Fri 7h, Mon 09:00-11:00
    assert resumed["due_at"] == berlin_time("2026-01-12T11:00")
    assert "crm_ticket_reopened" in hook_calls.names()


def test_a_late_reply_is_met_but_flagged_late(support, standard_policy, agent, clock):
    ticket = open_ticket(support)
    clock.set(berlin_time("2026-01-06T10:00"))
    support.tickets.reply(ticket.number, "Sorry for the wait.", actor=agent.email)
    first = metric(support, ticket.number, "first_reply")
    assert first["state"] == "fulfilled" and first["late"]
    assert first["due_at"] == berlin_time("2026-01-05T15:00") and first["breached_at"] == first["due_at"]
    assert first["target_minutes"] == 240 and first["elapsed_minutes"] == 7 * 60 and first["paused_minutes"] == 0


def test_a_manual_due_time_no_longer_moves(support, standard_policy, agent, clock):
    ticket = open_ticket(support)
    support.tickets.set_due(ticket.number, "resolution", "2026-01-20T12:00:00+01:00", actor=agent.email)
    support.tickets.set_status(ticket.number, "on_hold")
    clock.set(berlin_time("2026-01-07T10:00"))
    support.tickets.set_status(ticket.number, "open")
    support.tickets.update(ticket.number, priority="urgent")
    resolution = metric(support, ticket.number, "resolution")
    assert resolution["due_at"] == berlin_time("2026-01-20T12:00") and resolution["manual_due"]
    assert "set by hand" in "\n".join(support.tickets.explain(ticket.number))


class ProTargets:
    """Customers of the PRO product get a 30-minute first reply, whatever the policy says."""

    __name__ = "pro_targets"

    @hookimpl
    def crm_ticket_sla_target(self, ticket, metric, policy, ctx):
        return 30 if ticket.product == "PRO" and metric == "first_reply" else None


def test_a_plugin_may_compute_a_target(crm_factory, clock):
    from crmcore_ticketing import ticketing

    crm = crm_factory(plugins=["ticketing", ProTargets()])
    support = ticketing(crm)
    support.sla.add_calendar("Berlin office", timezone="Europe/Berlin", hours="mon-fri 09:00-17:00")
    support.sla.add_policy("Standard", calendar="Berlin office", targets={"*": {"first_reply": "4h"}})
    pro = open_ticket(support, product="PRO")
    basic = open_ticket(support, product="BASIC")
    assert metric(support, pro.number, "first_reply")["target_minutes"] == 30
    assert metric(support, pro.number, "first_reply")["target_source"] == "hook:pro_targets"
    assert metric(support, basic.number, "first_reply")["target_minutes"] == 240


def test_warnings_breach_and_fulfilment_fire_at_their_exact_times_once(support, berlin, agent, clock, run_due_jobs,
                                                                       hook_calls, crm):  # fmt: skip
    support.sla.add_policy("Standard", calendar="Berlin office", targets={"*": {"first_reply": "4h"}},
                           warnings=["30m", "50%"])  # fmt: skip
    ticket = open_ticket(support)  # Monday 10:00; 50% at 12:00, 30m before at 14:30, breach 15:00
    timers = crm.jobs.list(handler="ticketing.sla", state="pending")
    assert [j.due_at for j in timers] == [berlin_time("2026-01-05T12:00")]

    def fired(at):
        hook_calls.clear()
        clock.set(berlin_time(at))
        run_due_jobs()
        return [(c.name, c.kwargs["event"].point) for c in hook_calls.calls if c.name.startswith("crm_ticket_sla")]

    assert fired("2026-01-05T11:59") == []
    assert fired("2026-01-05T12:00") == [("crm_ticket_sla_warning", "50%")]
    assert fired("2026-01-05T14:29") == []
    assert fired("2026-01-05T14:30") == [("crm_ticket_sla_warning", "30m")]
    assert fired("2026-01-05T15:00") == [("crm_ticket_sla_breached", None)]
    assert fired("2026-01-05T16:00") == []
    hook_calls.clear()
    support.tickets.reply(ticket.number, "Done.", actor=agent.email)
    fulfilled = hook_calls.of("crm_ticket_sla_fulfilled")
    assert [(c["event"].metric, c["event"].late) for c in fulfilled] == [("first_reply", True)]
    assert crm.jobs.list(handler="ticketing.sla", state="pending") == []


def test_an_escalation_ladder_runs_after_the_breach(support, berlin, agent, lead_agent, clock, run_due_jobs,
                                                    crm):  # fmt: skip
    support.sla.add_policy(
        "Standard", calendar="Berlin office", targets={"*": {"first_reply": "4h"}},
        escalations={"first_reply": [
            {"after": "0m", "action": "notify", "to": "boss@example.com"},
            {"after": "1h", "action": "reassign", "to": "lead@example.com"},
            {"after": "2h", "action": "raise_priority"},
        ]},
    )  # fmt: skip
    ticket = open_ticket(support, assignee=agent.email)
    clock.set(berlin_time("2026-01-05T15:00"))
    run_due_jobs()
    mails = [j for j in crm.jobs.list(handler="core.send_mail") if "escalation" in j.payload["subject"]]
    assert [m.payload["to"] for m in mails] == ["boss@example.com"]
    clock.set(berlin_time("2026-01-05T16:00"))
    run_due_jobs()
    assert support.tickets.get(ticket.number).assignee_id == lead_agent.id
    clock.set(berlin_time("2026-01-05T17:00"))
    run_due_jobs()
    assert support.tickets.get(ticket.number).priority == "high"
    assert metric(support, ticket.number, "first_reply")["escalated"] == 3


def test_breaching_lists_what_is_at_risk_earliest_deadline_first(berlin, support, clock):
    support.sla.add_policy(
        "Standard",
        calendar="Berlin office",
        targets={"low": {"first_reply": "8h"}, "normal": {"first_reply": "4h"}, "urgent": {"first_reply": "1h"}},
    )
    low = open_ticket(support, priority="low")
    urgent = open_ticket(support, priority="urgent")
    normal = open_ticket(support, priority="normal")
    clock.set(berlin_time("2026-01-05T11:30"))
    at_risk = support.tickets.list(breaching=True)
    assert [t.number for t in at_risk] == [urgent.number]
    from datetime import timedelta

    assert [t.number for t in support.tickets.list(breaching=True, within=timedelta(days=2))] == [
        urgent.number, normal.number, low.number]  # fmt: skip


def test_a_holiday_is_crossed_and_explained(support, standard_policy, clock):
    clock.set(berlin_time("2026-12-31T16:00"))
    ticket = open_ticket(support)
    # 16:00-17:00 on New Year's Eve, New Year's Day is a holiday, then the weekend: Monday 4 January 2027 12:00
    assert metric(support, ticket.number, "first_reply")["due_at"] == berlin_time("2027-01-04T12:00")
    explained = "\n".join(support.tickets.explain(ticket.number))
    assert "crossed Fri 2027-01-01: holiday: New Year's Day (not counted)" in explained


def test_calendar_hours_targets_ignore_the_schedule(support, berlin, clock):
    support.sla.add_policy("Standard", calendar="Berlin office",
                           targets={"*": {"first_reply": "4h", "resolution": "48h@calendar"}})  # fmt: skip
    clock.set(berlin_time("2026-01-09T16:00"))  # Friday
    ticket = open_ticket(support)
    assert metric(support, ticket.number, "resolution")["due_at"] == berlin_time("2026-01-11T16:00")
    assert metric(support, ticket.number, "first_reply")["due_at"] == berlin_time("2026-01-12T12:00")


# -- policies and contracts ------------------------------------------------------------------


def test_policies_are_tried_in_order_and_the_catch_all_comes_last(support, berlin, clock):
    support.sla.add_policy("Standard", calendar="Berlin office", targets={"*": {"first_reply": "8h"}})
    support.sla.add_policy("Urgent email", conditions={"priority": ["urgent"], "channel": ["email"]},
                           calendar="Berlin office", targets={"urgent": {"first_reply": "1h"}})  # fmt: skip
    assert [p.name for p in support.sla.policies()] == ["Urgent email", "Standard"]
    assert metric(support, open_ticket(support, priority="urgent").number, "first_reply")["policy"] == "Urgent email"
    assert metric(support, open_ticket(support, priority="low").number, "first_reply")["policy"] == "Standard"


CONTRADICTIONS = [
    ({"targets": {"*": {"first_reply": "1h"}}, "conditions": {"priority": ["urgent"]}},
     "targets for priority high, low, normal, but the policy only applies to priority urgent"),
    ({"targets": {"*": {"first_reply": "1h"}}, "warnings": ["2h"]}, "the 2h warning would come before"),
    ({"targets": {"*": {"first_reply": {"minutes": 60, "business": True}}}, "calendar": None},
     "counts business hours, but the policy has no calendar"),
    ({"targets": {"*": {"first_reply": "1h"}}, "escalations": {"resolution": [{"after": "1h", "action": "notify"}]}},
     "escalates a metric the policy sets no target for"),
    ({"targets": {"*": {"first_reply": "1h"}}, "pause_statuses": ["open"]}, "only pending and on_hold can pause"),
    ({"targets": {"*": {"first_reply": "soon"}}}, "is not a duration"),
    ({"targets": {"*": {"first_reply": "1h"}}, "conditions": {"priority": []}}, "could never apply"),
    ({"targets": {}}, "at least one target"),
]  # fmt: skip


def test_contradictory_policies_are_refused_with_the_reason(support, berlin):
    for kwargs, message in CONTRADICTIONS:
        with pytest.raises(ValidationError, match=message):
            support.sla.add_policy("Broken", **{"calendar": "Berlin office", **kwargs})
    assert support.sla.policies() == []


def test_overlapping_policies_are_refused_with_the_reason(support, berlin):
    support.sla.add_policy(
        "Email", conditions={"channel": ["email", "web"]}, targets={"*": {"first_reply": "2h@calendar"}}
    )
    with pytest.raises(ValidationError, match=r"'Email only' would never apply: 'Email' .* covers every ticket"):
        support.sla.add_policy("Email only", conditions={"channel": ["email"], "priority": ["high"]},
                               targets={"high": {"first_reply": "1h@calendar"}}, position=2)  # fmt: skip
    support.sla.add_policy("Default", targets={"*": {"first_reply": "8h@calendar"}})
    with pytest.raises(ValidationError, match="would never apply: 'Default'"):
        support.sla.add_policy("Second default", targets={"*": {"first_reply": "9h@calendar"}})
    with pytest.raises(ValidationError, match="would hide 'Email'"):
        support.sla.add_policy("Everything first", targets={"*": {"first_reply": "9h@calendar"}}, position=1)


def test_bad_calendars_are_refused(support):
    with pytest.raises(ValidationError) as caught:
        support.sla.add_calendar("Nowhere", timezone="Mars/Olympus", hours="", holidays="XX")
    assert set(caught.value.errors) == {"timezone", "hours"} | (
        {"holidays"} if "holidays" in caught.value.errors else set()
    )
    assert "not a time zone" in caught.value.errors["timezone"]
    assert "at least one open interval" in caught.value.errors["hours"]
    assert support.sla.calendars() == []


def test_a_contract_tier_picks_the_policy_and_an_expired_contract_falls_back(support, berlin, clock):
    support.sla.add_policy("Gold", conditions={"tier": ["gold"]}, calendar="Berlin office",
                           targets={"*": {"first_reply": "1h"}})  # fmt: skip
    support.sla.add_policy("Standard", calendar="Berlin office", targets={"*": {"first_reply": "8h"}})
    gold = open_ticket(support, requester="gold@example.com")  # no contract yet: standard
    assert metric(support, gold.number, "first_reply")["policy"] == "Standard"
    support.contracts.add(contact="gold@example.com", tier="gold", starts_on="2025-01-01", ends_on="2026-12-31")
    assert metric(support, open_ticket(support, requester="gold@example.com").number, "first_reply")["policy"] == "Gold"
    open_ticket(support, requester="old@example.com")
    old = support.contracts.add(contact="old@example.com", tier="gold", starts_on="2024-01-01", ends_on="2025-06-30")
    expired = open_ticket(support, requester="old@example.com")
    assert metric(support, expired.number, "first_reply")["policy"] == "Standard"
    assert expired.sla_note == f"contract #{old.id} (gold) expired on 2025-06-30: default policy applies"
    assert f"note: contract #{old.id} (gold) expired" in "\n".join(support.tickets.explain(expired.number))


def test_a_contracts_hours_of_cover_are_the_clock(support, berlin, clock):
    support.sla.add_calendar("Around the clock", timezone="UTC", hours="mon-sun 00:00-24:00")
    support.sla.add_policy("Platinum", conditions={"tier": ["platinum"]}, calendar="Berlin office",
                           targets={"*": {"first_reply": "4h"}})  # fmt: skip
    vip = open_ticket(support, requester="vip@example.com")
    support.contracts.add(
        contact=vip.requester_id, tier="platinum", starts_on="2026-01-01", calendar="Around the clock"
    )
    clock.set(berlin_time("2026-01-10T11:00"))  # Saturday: Berlin is closed, the contract covers it
    ticket = open_ticket(support, requester="vip@example.com")
    assert metric(support, ticket.number, "first_reply")["due_at"] == berlin_time("2026-01-10T15:00")


def test_bad_contracts_are_refused_all_at_once(support):
    with pytest.raises(ValidationError) as caught:
        support.contracts.add(tier="", starts_on="2026-02-01", ends_on="2026-01-01")
    assert set(caught.value.errors) == {"tier", "ends_on", "customer"}


def test_a_deadline_across_the_spring_daylight_saving_change(support, standard_policy, clock):
    clock.set(berlin_time("2026-03-27T16:00"))  # Friday 16:00 CET; on Sunday Berlin moves to CEST (UTC+2)
    ticket = open_ticket(support)
    # 16:00-17:00 Friday, then Monday 09:00-12:00 CEST = 07:00-10:00 UTC
    assert metric(support, ticket.number, "first_reply")["due_at"] == datetime(2026, 3, 30, 10, 0, tzinfo=UTC)
    explained = "\n".join(support.tickets.explain(ticket.number))
    assert "due Mon 2026-03-30 12:00 Europe/Berlin (10:00 UTC)" in explained

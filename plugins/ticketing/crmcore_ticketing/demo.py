"""Ticketing's part of ``crm demo``: people write in, agents answer (not always in time), tickets get solved."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import and_, func, or_, select

from crmcore_ticketing.models import SlaMetric, Status, Ticket

if TYPE_CHECKING:
    from crmcore.demo.simulation import DemoDay

AGENTS = [("ana@example.com", "Ana Agent"), ("ben@example.com", "Ben Support")]
SUBJECTS = [
    ("Cannot log in since the update", "incident", "high"),
    ("Invoice address is wrong", "request", "normal"),
    ("How do I export my contacts?", "question", "low"),
    ("Reports page is very slow", "problem", "normal"),
    ("Everything is down!", "incident", "urgent"),
    ("Please add two more seats", "request", "normal"),
    ("Your support never answers", "complaint", "high"),
]


def setup(day: DemoDay) -> None:
    """Agents, the support calendar and the SLA policies, on the first day."""
    from crmcore_ticketing import ticketing

    sla = ticketing(day.crm).sla
    for email, name in AGENTS:
        day.crm.users.add(email, name, role="agent")
    sla.add_calendar("Support hours", timezone="Europe/Berlin", hours="mon-fri 09:00-17:00", holidays="DE")
    sla.add_policy("Urgent", conditions={"priority": ["urgent"]}, calendar="Support hours",
                   targets={"urgent": {"first_reply": "1h", "resolution": "8h"}}, warnings=["15m"])  # fmt: skip
    sla.add_policy("Standard", calendar="Support hours",
                   targets={"*": {"first_reply": "4h", "resolution": "3d"}}, warnings=["1h"])  # fmt: skip


def simulate(day: DemoDay) -> None:
    """Open a few tickets during the day, answer yesterday's and today's, solve answered ones."""
    from crmcore_ticketing import ticketing

    crm, rng = day.crm, day.rng
    if day.first:
        setup(day)
    agents = [email for email, _ in AGENTS]
    support = ticketing(crm).tickets
    if day.contacts:
        for _ in range(rng.choice([0, 1, 1, 2, 2, 3])):
            day.at(rng.randint(8, 16), rng.randint(0, 59))
            subject, category, priority = rng.choice(SUBJECTS)
            support.open(subject=subject, body=f"{subject}. Please help.", requester=rng.choice(day.contacts),
                         channel=rng.choice(["email", "web", "web", "phone"]), category=category,
                         priority=priority)  # fmt: skip
            day.count("tickets opened")
    day.at(17)
    with crm.transaction(readonly=True) as ctx:
        waiting = list(ctx.session.execute(select(Ticket.id, Ticket.status).where(
            Ticket.status.in_([Status.NEW.value, Status.OPEN.value]))))  # fmt: skip
    for ticket_id, status in waiting:
        agent = rng.choice(agents)
        if status == Status.NEW.value and rng.random() < 0.75:
            support.reply(ticket_id, "Thanks for writing. We are looking into it.", actor=agent)
        elif status == Status.OPEN.value and rng.random() < 0.5:
            support.reply(ticket_id, "This is fixed now. Tell us if anything is still wrong.", status="solved",
                          actor=agent)  # fmt: skip
            day.count("tickets solved")
    if day.last:
        now = crm.clock.now()
        with crm.transaction(readonly=True) as ctx:
            late = or_(SlaMetric.breached_at.is_not(None), SlaMetric.fulfilled_at > SlaMetric.due_at,
                       and_(SlaMetric.fulfilled_at.is_(None), SlaMetric.due_at < now))  # fmt: skip
            day.count("SLA targets missed", ctx.session.scalar(select(func.count()).where(late)) or 0)
            day.count("SLA targets set", ctx.session.scalar(select(func.count(SlaMetric.id))) or 0)

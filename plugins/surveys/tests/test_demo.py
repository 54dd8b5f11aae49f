"""Surveys' part of ``crm demo``: surveys set up, consents given, invitations answered."""

from __future__ import annotations

import random
from collections import Counter

from crmcore_surveys import surveys
from crmcore_surveys.demo import simulate

from crmcore.demo.simulation import DemoDay


def test_a_demo_day_sets_up_asks_and_answers(crm, clock, run_due_jobs):
    rng, counts = random.Random(7), Counter()
    crm.products.add("PRO", "Pro plan", unit_price="99.00")
    leads = [crm.leads.capture(email=f"lead{n}@example.com").id for n in range(30)]

    def day(first: bool = False) -> DemoDay:
        return DemoDay(crm=crm, date=clock.now().date(), rng=rng, leads=leads if first else [], customers=[],
                       contacts=leads, counts=counts, first=first)  # fmt: skip

    simulate(day(first=True))
    assert [s.key for s in surveys(crm).surveys.list(state="active")] == ["customer-nps"]
    for contact_id in leads:
        crm.customers.record_purchase(contact_id, sku="PRO")
    clock.advance(days=2)
    run_due_jobs()
    run_due_jobs()
    sent = [i for i in surveys(crm).surveys.invitations("customer-nps") if i.status == "sent"]
    assert sent
    for _ in range(5):
        clock.advance(days=1)
        simulate(day())
    responses = surveys(crm).surveys.responses("customer-nps")
    assert counts["survey answers"] == len(responses) > 0
    assert crm.reports.run("surveys.results", params={"survey": "customer-nps"}).rows[0]["responses"] == len(responses)

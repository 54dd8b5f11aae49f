"""Sending campaigns through a real SMTP server: batches, consent, suppression, retries, pause, crashes."""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from crmcore_email_marketing.models import Recipient
from sqlalchemy import select

from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.models import Job


def _recipients(crm: Any, campaign_id: int) -> dict[str, Recipient]:
    with crm.transaction(readonly=True) as ctx:
        rows = ctx.session.scalars(select(Recipient).where(Recipient.campaign_id == campaign_id)).all()
        return {r.email or f"#{r.contact_id}": r for r in rows}


def _arrivals(smtp_server: Any) -> Counter[str]:
    return Counter(str(m["To"]) for m in smtp_server.messages)


def test_a_campaign_reaches_every_reachable_contact_once_and_records_each_skip(
    crm, em, newsletter, people, smtp_server, run_due_jobs
):
    crm.contacts.update(people[3].id, do_not_contact=True)  # Edsger asked not to be contacted
    em.suppressions.add("barbara@example.com", detail="asked by phone")
    campaign = em.campaigns.create("Spring", template="newsletter", segment="everyone", budget="500", cost="120.50")
    em.campaigns.send("Spring")
    assert em.campaigns.get("Spring").state == "sending"
    run_due_jobs()

    arrived = _arrivals(smtp_server)
    assert arrived == Counter(["ada@example.com", "grace@example.com", "alan@example.com", "donald@example.com"])
    ada = smtp_server.to("ada@example.com")[0]
    assert ada["Subject"] == "News for Ada"
    assert ada["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert str(ada["List-Unsubscribe"]).strip().startswith("<https://crm.example.com/email/u/")
    html = ada.get_body(("html",)).get_content()
    text = ada.get_body(("plain",)).get_content()
    assert "<h1>Hello Ada</h1>" in html and "https://crm.example.com/email/o/" in html
    assert "Hello Ada" in text and "Shop now (https://crm.example.com/r/s/" in text  # text made from HTML

    rows = _recipients(crm, campaign.id)
    assert rows["edsger@example.com"].status == "skipped" and rows["edsger@example.com"].reason == "do not contact"
    assert rows["barbara@example.com"].reason == "suppressed (manual)"
    assert [r.reason for r in rows.values() if r.email is None] == ["no email address"]
    stats = em.campaigns.stats("Spring")
    assert (stats["state"], stats["sent"], stats["skipped"], stats["recipients"]) == ("done", 4, 3, 7)
    # batches of 3: one SMTP connection each
    assert smtp_server.connections == 2


def test_segment_template_and_state_errors_are_clear_and_change_nothing(crm, em, newsletter, people, smtp_server):
    with pytest.raises(ValidationError) as bad:
        em.campaigns.create("", template="newsletter", segment="everyone", budget="-3", currency="euro")
    assert set(bad.value.errors) == {"name", "budget", "currency"}
    em.campaigns.create("Empty", template="newsletter", segment="nobody")
    with pytest.raises(ValidationError, match="matches no contacts"):
        em.campaigns.send("Empty")
    em.campaigns.create("Typo", template="newsletter", segment="evryone")
    with pytest.raises(NotFound, match="segments: everyone, germans, nobody"):
        em.campaigns.send("Typo")
    assert {c.state for c in em.campaigns.list()} == {"draft"}
    with pytest.raises(Conflict):
        em.campaigns.pause("Empty")
    with crm.transaction(readonly=True) as ctx:
        assert ctx.session.scalars(select(Job).where(Job.handler.like("email_marketing.%"))).all() == []


def test_a_campaign_cannot_be_edited_while_sending_but_its_cost_can(crm, em, newsletter, people):
    em.campaigns.create("Spring", template="newsletter", segment="everyone")
    em.campaigns.send("Spring")
    with pytest.raises(Conflict, match="only its cost can change"):
        em.campaigns.update("Spring", segment="germans")
    with pytest.raises(Conflict, match="scheduled or sending"):
        em.templates.update("newsletter", subject="Changed")
    assert em.campaigns.update("Spring", cost="99.90").actual_cost == Decimal("99.90")


def test_temporary_refusals_are_retried_later_and_permanent_ones_recorded_and_suppressed(
    crm, em, newsletter, people, smtp_server, run_due_jobs, clock
):
    smtp_server.refuse["grace@example.com"] = "550 5.1.1 <grace@example.com>: Recipient address rejected: User unknown"
    smtp_server.fail_next(1, "451 4.7.1 Greylisted, try again later")  # the first message (Ada's)
    campaign = em.campaigns.create("Spring", template="newsletter", segment="everyone")
    em.campaigns.send("Spring")
    run_due_jobs()
    rows = _recipients(crm, campaign.id)
    assert rows["ada@example.com"].status == "queued" and "451 4.7.1" in rows["ada@example.com"].reason
    assert rows["grace@example.com"].status == "failed" and "550 5.1.1" in rows["grace@example.com"].reason
    assert em.suppressions.is_suppressed("grace@example.com")
    assert em.campaigns.get("Spring").state == "sending"
    assert "ada@example.com" not in _arrivals(smtp_server)

    clock.advance(minutes=11)  # retry_minutes: 10
    run_due_jobs()
    assert _arrivals(smtp_server)["ada@example.com"] == 1
    assert _recipients(crm, campaign.id)["ada@example.com"].status == "sent"
    assert em.campaigns.get("Spring").state == "done"


def test_a_recipient_refused_too_often_is_recorded_as_failed(crm, em, newsletter, people, smtp_server, run_due_jobs,
                                                           clock):  # fmt: skip
    smtp_server.refuse["ada@example.com"] = "452 4.2.2 Mailbox full"
    campaign = em.campaigns.create("Spring", template="newsletter", segment="everyone")
    em.campaigns.send("Spring")
    for _ in range(6):
        run_due_jobs()
        clock.advance(hours=12)
    ada = _recipients(crm, campaign.id)["ada@example.com"]
    assert (ada.status, ada.attempts) == ("failed", 5)
    assert ada.reason.startswith("gave up after 5 temporary refusals: 452 4.2.2")
    assert not em.suppressions.is_suppressed("ada@example.com")
    assert em.campaigns.get("Spring").state == "done"


def test_pause_stops_after_the_messages_in_hand_and_resume_sends_the_rest_once(
    crm, em, newsletter, people, smtp_server, run_due_jobs, monkeypatch
):
    from crmcore_email_marketing import sending

    campaign = em.campaigns.create("Spring", template="newsletter", segment="everyone")
    em.campaigns.send("Spring")
    original = sending._Delivery._sent

    def pause_after_second(self: Any, row: dict[str, Any], message_id: str) -> None:
        original(self, row, message_id)
        if len(smtp_server.messages) == 2:  # a marketer pauses it from elsewhere (another thread here)
            pausing = threading.Thread(target=em.campaigns.pause, args=("Spring",))
            pausing.start()
            pausing.join()

    monkeypatch.setattr(sending._Delivery, "_sent", pause_after_second)
    run_due_jobs()
    assert len(smtp_server.messages) == 2  # the group in hand (commit_every: 2) is finished, nothing after it
    assert em.campaigns.get("Spring").state == "paused"
    monkeypatch.setattr(sending._Delivery, "_sent", original)

    em.campaigns.resume("Spring")
    run_due_jobs()
    assert _arrivals(smtp_server) == Counter(f"{n}@example.com" for n in ["ada", "grace", "alan", "edsger",
                                                                          "barbara", "donald"])  # fmt: skip
    assert em.campaigns.stats(campaign.id)["state"] == "done"


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing after it runs in the dying worker."""


def kill_worker_on_send(monkeypatch: Any, nth: int, *, accepted: bool) -> Any:
    """Make the *nth* SMTP send kill the worker, after the server accepted it or before it got it.

    Returns the real ``SMTPConnection.send``, to put back once the worker has died.
    """
    from crmcore.mail import SMTPConnection

    original = SMTPConnection.send
    calls = {"n": 0}

    def dying_send(self: Any, message: Any) -> None:
        calls["n"] += 1
        if calls["n"] == nth:
            if accepted:
                original(self, message)
            raise WorkerKilled
        original(self, message)

    monkeypatch.setattr(SMTPConnection, "send", dying_send)
    return original


@pytest.mark.parametrize("when", ["after the server accepted", "before the server got it"])
def test_a_worker_killed_mid_batch_resumes_and_nobody_gets_two_copies(
    crm, em, newsletter, people, smtp_server, run_due_jobs, clock, monkeypatch, when
):
    from crmcore.mail import SMTPConnection

    campaign = em.campaigns.create("Spring", template="newsletter", segment="everyone")
    em.campaigns.send("Spring")
    original = kill_worker_on_send(monkeypatch, 2, accepted=when == "after the server accepted")
    with pytest.raises(WorkerKilled):
        run_due_jobs()
    monkeypatch.setattr(SMTPConnection, "send", original)
    assert em.campaigns.get("Spring").state == "sending"

    clock.advance(minutes=6)  # the dead worker's lease (5 minutes) runs out; the batch is claimed again
    run_due_jobs()
    arrived = _arrivals(smtp_server)
    assert max(arrived.values()) == 1
    rows = _recipients(crm, campaign.id)
    # the group in hand (commit_every: 2, Ada's and Grace's) is not resent: Ada's left, Grace's may have
    unknown = sorted(r.email for r in rows.values() if r.status == "unknown")
    assert unknown == ["ada@example.com", "grace@example.com"]
    assert all("not resent" in rows[address].reason for address in unknown)
    expected_arrivals = 6 if when == "after the server accepted" else 5
    assert len(arrived) == expected_arrivals
    assert sum(1 for r in rows.values() if r.status == "sent") == 4
    assert em.campaigns.get("Spring").state == "done"


def test_a_worker_killed_in_a_later_group_keeps_the_earlier_groups_sent_and_sends_nobody_twice(
    crm_factory, crm_plugins, email_settings, smtp_settings, smtp_server, clock, monkeypatch
):
    from crmcore_email_marketing import email_marketing

    from crmcore.mail import SMTPConnection

    settings = {**email_settings, "batch_size": 10, "commit_every": 4, "fill_chunk": 20}
    crm = crm_factory(plugins=crm_plugins, **smtp_settings, plugin_settings={"email_marketing": settings})
    em = email_marketing(crm)
    em.templates.create("t", subject="Hi", html="<p>Hi</p>")
    for index in range(1, 11):
        crm.contacts.add(email=f"p{index}@example.com")
    campaign = em.campaigns.create("Spring", template="t", segment="everyone")
    em.campaigns.send("Spring")
    # the second of the second group is accepted, then the worker dies
    original = kill_worker_on_send(monkeypatch, 6, accepted=True)
    with pytest.raises(WorkerKilled):
        crm.jobs.run_due()
    monkeypatch.setattr(SMTPConnection, "send", original)
    clock.advance(minutes=6)  # the dead worker's lease runs out; the batch is claimed again
    crm.jobs.run_due()

    arrived = _arrivals(smtp_server)
    assert max(arrived.values()) == 1
    assert sorted(arrived) == sorted(f"p{n}@example.com" for n in [1, 2, 3, 4, 5, 6, 9, 10])
    statuses = {address: row.status for address, row in _recipients(crm, campaign.id).items()}
    assert [statuses[f"p{n}@example.com"] for n in range(1, 11)] == ["sent"] * 4 + ["unknown"] * 4 + ["sent"] * 2
    assert em.campaigns.get("Spring").state == "done"


def test_the_server_dropping_the_connection_mid_batch_is_survived(
    crm, em, newsletter, people, smtp_server, run_due_jobs, monkeypatch
):
    from crmcore.mail import SMTPConnection

    em.campaigns.create("Spring", template="newsletter", segment="everyone")
    em.campaigns.send("Spring")
    original = SMTPConnection.send
    calls = {"n": 0}

    def drop_second(self: Any, mime: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            self.client.sock.close()  # the connection goes away before the message is sent
        original(self, mime)

    monkeypatch.setattr(SMTPConnection, "send", drop_second)
    run_due_jobs()
    assert _arrivals(smtp_server) == Counter(f"{n}@example.com" for n in ["ada", "grace", "alan", "edsger",
                                                                          "barbara", "donald"])  # fmt: skip
    assert smtp_server.connections == 3  # two batches, one reconnection


def test_an_unreachable_server_leaves_the_batch_for_a_later_retry(crm_factory, crm_plugins, run_due_jobs, clock):
    from crmcore_email_marketing import email_marketing

    crm = crm_factory(plugins=crm_plugins, mail_transport="smtp", smtp_host="127.0.0.1", smtp_port=9, smtp_timeout=2)
    em = email_marketing(crm)
    em.templates.create("t", subject="Hi", html="<p>Hi</p>")
    crm.contacts.add(email="ada@example.com")
    campaign = em.campaigns.create("Spring", template="t", segment="everyone")
    em.campaigns.send("Spring")
    crm.jobs.run_due()
    [ada] = _recipients(crm, campaign.id).values()
    assert ada.status == "queued"
    with crm.transaction(readonly=True) as ctx:
        job = ctx.session.scalars(select(Job).where(Job.handler == "email_marketing.deliver")).one()
    assert job.state == "pending" and "cannot reach the mail server" in job.last_error


def test_the_rate_limit_spaces_batches_as_timers(crm_factory, crm_plugins, email_settings, smtp_settings, clock):
    from crmcore_email_marketing import email_marketing

    settings = {**email_settings, "rate_limit": 1.5, "batch_size": 3}
    crm = crm_factory(plugins=crm_plugins, **smtp_settings, plugin_settings={"email_marketing": settings})
    em = email_marketing(crm)
    em.templates.create("t", subject="Hi", html="<p>Hi</p>")
    for index in range(7):
        crm.contacts.add(email=f"p{index}@example.com")
    em.campaigns.create("Spring", template="t", segment="everyone")
    em.campaigns.send("Spring")
    crm.jobs.run_due(limit=1)  # the first fill chunk (5 contacts): two batches
    crm.jobs.run_due(limit=1)  # the second chunk: one batch
    with crm.transaction(readonly=True) as ctx:
        dues = ctx.session.scalars(
            select(Job.due_at).where(Job.handler == "email_marketing.deliver").order_by(Job.due_at)
        ).all()
    assert [round((d - clock.now()).total_seconds()) for d in dues] == [0, 2, 4]


def test_contacts_in_other_time_zones_get_it_at_their_local_time(crm, em, newsletter, clock, smtp_server,
                                                                 run_due_jobs):  # fmt: skip
    crm.contacts.add(email="tokyo@example.com", timezone="Asia/Tokyo")
    crm.contacts.add(email="berlin@example.com", timezone="Europe/Berlin")
    crm.contacts.add(email="utc@example.com")
    em.campaigns.create("Morning", template="newsletter", segment="everyone")
    em.campaigns.schedule("Morning", local_time="2026-01-06T09:00")
    clock.set("2026-01-06T00:00:00+00:00")  # 09:00 in Tokyo
    run_due_jobs()
    assert set(_arrivals(smtp_server)) == {"tokyo@example.com"}
    clock.set("2026-01-06T08:00:00+00:00")  # 09:00 in Berlin
    run_due_jobs()
    assert set(_arrivals(smtp_server)) == {"tokyo@example.com", "berlin@example.com"}
    clock.set("2026-01-06T09:00:00+00:00")
    run_due_jobs()
    assert sum(_arrivals(smtp_server).values()) == 3
    assert em.campaigns.get("Morning").state == "done"


def test_a_scheduled_campaign_starts_at_its_time_and_can_be_cancelled_before(crm, em, newsletter, people, clock,
                                                                             smtp_server, run_due_jobs):  # fmt: skip
    em.campaigns.create("Later", template="newsletter", segment="everyone")
    em.campaigns.schedule("Later", at="2026-01-05T12:00:00+00:00")
    run_due_jobs()
    assert smtp_server.messages == []
    clock.advance(hours=3)
    run_due_jobs()
    assert len(smtp_server.messages) == 6
    em.campaigns.create("Never", template="newsletter", segment="everyone")
    em.campaigns.schedule("Never", at="2026-01-07T12:00:00+00:00")
    em.campaigns.cancel("Never")
    clock.advance(days=3)
    run_due_jobs()
    assert len(smtp_server.messages) == 6
    with pytest.raises(ValidationError, match="in the past"):
        em.campaigns.create("Past", template="newsletter", segment="everyone")
        em.campaigns.schedule("Past", at="2026-01-01T00:00:00+00:00")


def test_a_template_that_fails_for_one_contact_skips_only_that_contact(crm, em, people, smtp_server, run_due_jobs):
    crm.custom_fields.define(_visits_field())
    em.templates.create("ratio", subject="Hi", html="<p>{{ 100 // contact.custom.visits }}</p>")
    crm.contacts.update(people[0].id, custom={"visits": 0})
    for person in people[1:6]:
        crm.contacts.update(person.id, custom={"visits": 4})
    campaign = em.campaigns.create("Ratio", template="ratio", segment="everyone")
    em.campaigns.send("Ratio")
    run_due_jobs()
    ada = _recipients(crm, campaign.id)["ada@example.com"]
    assert (
        ada.status == "skipped"
        and ada.reason == "template error: html, line 1: ZeroDivisionError: integer division or modulo by zero"
    )
    assert len(smtp_server.messages) == 5


def _visits_field() -> Any:
    from crmcore.registry import CustomFieldSpec

    return CustomFieldSpec(name="visits", label="Visits", type="integer")


def test_no_recipient_row_twice_when_a_fill_chunk_runs_again(crm, em, newsletter, people, run_due_jobs):
    """The fill's writes commit with its job: a repeat finds the rows (unique per campaign and contact)."""
    from crmcore_email_marketing.sending import fill_chunk

    campaign = em.campaigns.create("Spring", template="newsletter", segment="everyone")
    em.campaigns.send("Spring")
    run_due_jobs(limit=1)
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        with crm.transaction() as ctx:
            row = ctx.session.get(type(em.campaigns.get("Spring")), campaign.id)
            row.fill_cursor = 0
            fill_chunk(ctx, row)
    run_due_jobs()
    assert len(_recipients(crm, campaign.id)) == 7


def test_an_invalid_address_is_skipped_with_the_reason_and_the_rest_is_sent(crm, em, newsletter, people, smtp_server,
                                                                            run_due_jobs):  # fmt: skip
    from sqlalchemy import update

    from crmcore.models import Contact

    with crm.transaction() as ctx:  # imported long ago, before addresses were checked
        ctx.session.execute(update(Contact).where(Contact.id == people[1].id).values(email="grace at example"))
    campaign = em.campaigns.create("Spring", template="newsletter", segment="everyone")
    em.campaigns.send("Spring")
    run_due_jobs()
    assert _recipients(crm, campaign.id)["grace at example"].reason == "invalid email address 'grace at example'"
    assert len(smtp_server.messages) == 5

"""Tickets through the service: channels, thread, attachments, assignment, status, history, hooks."""

from __future__ import annotations

import pytest

from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.mail import Attachment
from crmcore.models import Contact


def test_an_unknown_requester_becomes_a_lead_and_the_ticket_gets_a_tracking_number(support, crm, hook_calls):
    ticket = support.tickets.open(
        subject="Cannot log in", body="Since this morning.", requester="New Person <new@example.com>", channel="web"
    )
    assert ticket.number.startswith("TK-") and len(ticket.number) == 12
    with crm.transaction() as ctx:
        contact = ctx.session.get(Contact, ticket.requester_id)
        assert (contact.email, contact.stage, contact.first_name) == ("new@example.com", "lead", "New")
    assert hook_calls.names().count("crm_lead_captured") == 1
    assert "crm_ticket_created" in hook_calls.names() and "crm_ticket_message_added" in hook_calls.names()
    event = hook_calls.of("crm_ticket_created")[0]["event"]
    assert (event.ticket_id, event.contact_id, event.channel) == (ticket.id, contact.id, "web")
    # the same person again is the same contact, and the number works however it is typed
    again = support.tickets.open(subject="Still", body="...", requester="NEW@example.com")
    assert again.requester_id == contact.id
    assert support.tickets.get(ticket.number.lower().replace("-", " ")).id == ticket.id


def test_phone_and_chat_are_logged_by_the_agent_with_their_channel(support, agent):
    call = support.tickets.open(subject="Invoice question", body="Customer called about invoice 1042.",
                                requester="ada@example.com", channel="phone", actor=agent.email)  # fmt: skip
    support.tickets.customer_message(call.number, "Can I pay in two instalments?", channel="phone", actor=agent.email)
    support.tickets.reply(call.number, "Yes, I set that up.", channel="phone", actor=agent.email)
    thread = support.tickets.messages(call.number)
    assert [(m.author_type, m.channel) for m in thread] == [
        ("agent", "phone"),
        ("customer", "phone"),
        ("agent", "phone"),
    ]
    assert support.tickets.get(call.number).channel == "phone"
    chat = support.tickets.open(subject="Chat", body="Hi, where is my order?", requester="ada@example.com",
                                channel="chat", by_agent=False)  # fmt: skip
    assert support.tickets.messages(chat.number)[0].author_type == "customer"


def test_every_change_is_in_the_history(support, agent, lead_agent, crm):
    crm.users.add("second@example.com", "Second Line", role="agent", team="Second line")
    ticket = support.tickets.open(subject="Broken", body="It broke.", requester="ada@example.com")
    support.tickets.assign(ticket.number, assignee=agent.email, team="Second line", actor=lead_agent.email)
    support.tickets.update(ticket.number, priority="high", category="incident", tags="printer, Urgent",
                           actor=lead_agent.email)  # fmt: skip
    support.tickets.note(ticket.number, "Known issue", actor=agent.email)
    support.tickets.reply(ticket.number, "Fixed", status="solved", actor=agent.email)
    support.tickets.close(ticket.number, actor=agent.email)
    changes = [(h.field, h.old_value, h.new_value) for h in support.tickets.history(ticket.number)]
    fields = [c[0] for c in changes]
    assert fields[0] == "created" and "message" not in fields  # the first message is part of "created"
    assert ("assignee", None, "agent@example.com") in changes and ("group", None, "Second line") in changes
    assert ("priority", "normal", "high") in changes and ("category", "question", "incident") in changes
    assert ("tags", "[]", "['printer', 'urgent']") in changes
    assert ("status", "new", "solved") in changes
    assert ("status", "solved", "closed") in changes
    assert {h.actor for h in support.tickets.history(ticket.number) if h.field == "priority"} == {
        "user:lead@example.com"
    }


def test_attachments_are_stored_as_files_within_the_size_limit(support, agent, crm, tmp_path):
    from crmcore_ticketing.attachments import read

    ticket = support.tickets.open(subject="Logs", body="See attached", requester="ada@example.com",
                                  attachments=[Attachment(filename="../../etc/log.txt", content_type="text/plain",
                                                          data=b"line 1\nline 2\n")])  # fmt: skip
    first = support.tickets.messages(ticket.number)[0]
    [stored] = support.tickets.attachments(first.id)
    assert (stored.filename, stored.size, stored.content_type) == ("log.txt", 14, "text/plain")
    assert read(crm, stored.path) == b"line 1\nline 2\n"
    assert (tmp_path / "attachments" / stored.path).is_file()


@pytest.mark.parametrize("ticketing_settings", [{"max_attachment_bytes": 1000}], indirect=True)
def test_a_huge_attachment_is_refused_and_nothing_is_written(support, crm, tmp_path):
    big = Attachment(filename="dump.bin", content_type="application/octet-stream", data=b"x" * 5000)
    with pytest.raises(
        ValidationError, match=r"attachments: larger than the 1,000-byte limit: dump.bin \(5,000 bytes\)"
    ):
        support.tickets.open(subject="Dump", body="Core dump attached", requester="ada@example.com", attachments=[big])
    assert support.tickets.list() == []
    assert not (tmp_path / "attachments").exists()


def test_bad_input_is_refused_all_at_once_and_nothing_is_partial(support, crm):
    with pytest.raises(ValidationError) as caught:
        support.tickets.open(subject="", body="", requester="ada@example.com", channel="fax", priority="asap",
                             category="rant", assignee="nobody@example.com")  # fmt: skip
    assert set(caught.value.errors) == {"subject", "body", "channel", "priority", "category", "assignee"}
    assert support.tickets.list() == []
    with crm.transaction() as ctx:  # the requester captured before the refusal was rolled back too
        assert ctx.first(Contact, Contact.email_normalized == "ada@example.com") is None
    with pytest.raises(ValidationError, match="requester"):
        support.tickets.open(subject="x", body="y", requester="not an email")
    with pytest.raises(NotFound):
        support.tickets.reply("TK-0000-0000", "hello")


def test_a_hook_that_raises_rolls_the_ticket_back(crm_factory):
    from crmcore_ticketing import ticketing

    from crmcore import hookimpl
    from crmcore.errors import PluginError

    class Veto:
        __name__ = "veto_complaints"

        @hookimpl
        def crm_ticket_created(self, event, ctx):
            if event.category == "complaint":
                raise RuntimeError("complaints go to the legal team")

    support = ticketing(crm_factory(plugins=["ticketing", Veto()]))
    with pytest.raises(PluginError, match=r"veto_complaints.*complaints go to the legal team"):
        support.tickets.open(subject="Angry", body="!!!", requester="ada@example.com", category="complaint")
    assert support.tickets.list() == []


def test_a_closed_ticket_takes_no_replies_and_cannot_move(support, agent):
    ticket = support.tickets.open(subject="Done", body="...", requester="ada@example.com")
    support.tickets.close(ticket.number)
    assert support.tickets.get(ticket.number).status == "closed"
    with pytest.raises(Conflict, match="closed"):
        support.tickets.reply(ticket.number, "More", actor=agent.email)
    with pytest.raises(Conflict, match="closed"):
        support.tickets.set_status(ticket.number, "open")


def test_solved_fires_with_the_fields_surveys_need(support, agent, hook_calls):
    ticket = support.tickets.open(subject="Refund", body="Please refund", requester="ada@example.com",
                                  category="request", product="PRO", assignee=agent.email)  # fmt: skip
    support.tickets.reply(ticket.number, "Refunded.", status="solved", actor=agent.email)
    [call] = hook_calls.of("crm_ticket_solved")
    event = call["event"]
    assert (event.ticket_id, event.assignee_id, event.channel, event.category, event.product) == (
        ticket.id, agent.id, "api", "request", "PRO")  # fmt: skip
    changed = [(c["event"].from_status, c["event"].to_status) for c in hook_calls.of("crm_ticket_status_changed")]
    assert changed == [("new", "solved")]


def test_replies_are_emailed_with_the_tracking_number_and_threading_headers(crm_factory, smtp_settings, smtp_server,
                                                                            tmp_path):  # fmt: skip
    from crmcore_ticketing import ticketing

    crm = crm_factory(plugins=["ticketing"], **smtp_settings,
                      plugin_settings={"ticketing": {"attachment_dir": str(tmp_path / "a"),
                                                     "support_address": "Support <support@example.com>"}})  # fmt: skip
    support = ticketing(crm)
    agent = crm.users.add("agent@example.com", "Alex Agent", role="agent")
    raw = (__import__("pathlib").Path(__file__).parent / "data" / "outlook_quoted_printable.eml").read_bytes()
    result = support.mail.ingest(raw)
    support.tickets.reply(
        result.number,
        "A fix is deployed, please try again.",
        actor=agent.email,
        attachments=[Attachment(filename="fix.txt", content_type="text/plain", data=b"patch")],
    )
    support.tickets.note(result.number, "internal only", actor=agent.email)
    crm.jobs.run_due()
    received = smtp_server.to("claire@librairie-dubois.fr")
    subjects = [m["Subject"] for m in received]
    assert f"[{result.number}] Wrong VAT rate on invoices since 4.2" in subjects
    reply = next(m for m in received if "deployed" in m.get_body(("plain",)).get_content())
    assert reply["Auto-Submitted"] is None and reply["From"] == "Support <support@example.com>"
    assert reply["In-Reply-To"] == "<PR3P195MB0741B2C9D8E4F1A6B3C2D1E0F9A8@PR3P195MB0741.EURP195.PROD.OUTLOOK.COM>"
    assert "Alex Agent" in reply.get_body(("plain",)).get_content()
    assert [a.get_filename() for a in reply.iter_attachments()] == ["fix.txt"]
    ack = next(m for m in received if m["Auto-Submitted"] == "auto-replied")
    assert result.number in ack.get_body(("plain",)).get_content()
    assert not any("internal only" in m.as_string() for m in smtp_server.messages)

"""Erasing a person reaches the ticketing tables: their words go, the ticket counts stay."""

from __future__ import annotations

from pathlib import Path

from crmcore.mail import Attachment


def test_erase_blanks_the_persons_tickets_and_their_attachment_files(crm, support, agent, ticketing_settings):
    ticket = support.tickets.open(
        subject="My order 4711 for Ada Lovelace",
        body="Call me on 0170 1234567",
        requester="ada@example.com",
        channel="web",
        attachments=[Attachment(filename="id.txt", content_type="text/plain", data=b"ID")],
    )
    support.tickets.reply(ticket.number, "Dear Ada, we are on it", actor=agent.id, send=False)
    other = support.tickets.open(subject="Bob's question", body="Hello", requester="bob@example.com")
    files = [f for f in Path(ticketing_settings["attachment_dir"]).rglob("*") if f.is_file()]
    assert files

    crm.contacts.erase("ada@example.com")

    assert support.tickets.get(ticket.number).subject == "[erased]"
    assert {m.body for m in support.tickets.messages(ticket.number)} == {"[erased]"}
    assert all(not f.exists() for f in files)
    assert support.tickets.get(other.number).subject == "Bob's question"  # nobody else's
    assert len(support.tickets.messages(ticket.number)) == 2  # the counts stay for reports

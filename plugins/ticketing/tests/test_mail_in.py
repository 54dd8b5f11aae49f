"""Email in: real messages of the kinds mail clients send, threading, machine mail, bad mail, Maildir."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from crmcore_ticketing.models import Ticket

from crmcore.errors import ValidationError
from crmcore.models import Contact


def test_multipart_alternative_with_encoded_headers_opens_a_ticket(support, crm, eml):
    result = support.mail.ingest(eml("thunderbird_multipart_alternative.eml"))
    assert result.action == "created"
    ticket = support.tickets.get(result.number)
    assert ticket.subject == "Drucker im Büro meldet Papierstau" and ticket.channel == "email"
    [message] = support.tickets.messages(result.number)
    assert message.body.startswith("Hallo,\n\nder Drucker im Büro zeigt seit heute früh „Papierstau“")
    assert message.message_id == "<6f1c2a9e-3b1d-4c7e-9a55-0d2f4e8b1c01@example.de>"
    with crm.transaction() as ctx:
        contact = ctx.session.get(Contact, ticket.requester_id)
        assert (contact.email, contact.first_name, contact.last_name, contact.stage) == (
            "juergen.mueller@example.de", "Jürgen", "Müller", "lead")  # fmt: skip


def test_quoted_printable_from_outlook(support, eml):
    result = support.mail.ingest(eml("outlook_quoted_printable.eml"))
    [message] = support.tickets.messages(result.number)
    assert (
        "(19 % instead of 7 %) for books. This affects every invoice created after 2 January – we need" in message.body
    )


def test_base64_iso_8859_1_with_an_attachment(support, crm, eml):
    result = support.mail.ingest(eml("latin1_base64_attachment.eml"))
    ticket = support.tickets.get(result.number)
    assert ticket.subject == "Problème de connexion à mon compte"
    [message] = support.tickets.messages(result.number)
    assert "Le message d'erreur est « mot de passe expiré »." in message.body
    [attachment] = support.tickets.attachments(message.id)
    assert (attachment.filename, attachment.content_type) == ("capture écran.pdf", "application/pdf")
    from crmcore_ticketing.attachments import read

    assert read(crm, attachment.path).startswith(b"%PDF-1.4")


def test_html_only_windows_1252_and_an_unknown_charset(support, eml):
    html = support.mail.ingest(eml("html_only_windows1252.eml"))
    body = support.tickets.messages(html.number)[0].body
    assert "Our order #5521 arrived damaged – the box was crushed." in body and "color:red" not in body
    assert "Tomás" in body
    odd = support.mail.ingest(eml("unknown_charset.eml"))
    assert "Grüße" in support.tickets.messages(odd.number)[0].body


def test_a_reply_threads_by_in_reply_to_and_keeps_only_the_new_text(support, eml):
    first = support.mail.ingest(eml("thunderbird_multipart_alternative.eml"))
    reply = support.mail.ingest(eml("applemail_reply_in_reply_to.eml"))
    assert (reply.action, reply.number) == ("appended", first.number)
    thread = support.tickets.messages(first.number)
    assert thread[-1].body == "Nachtrag: Der Fehler kommt auch nach dem Neustart wieder.\n\nJürgen"


def test_a_reply_threads_by_the_tracking_number_in_the_subject(support, agent, eml):
    first = support.mail.ingest(eml("outlook_quoted_printable.eml"))
    support.tickets.reply(first.number, "A fix is deployed.", status="pending", actor=agent.email)
    reply = support.mail.ingest(eml("gmail_reply_tracking_number.eml", {"TK-0000-0000": first.number}))
    assert (reply.action, reply.number) == ("appended", first.number)
    last = support.tickets.messages(first.number)[-1]
    assert last.body == "Thanks, the patch works. One more question: do old invoices need to be\nre-issued?\n\nClaire"
    assert support.tickets.get(first.number).status == "open"  # the customer answered: pending -> open


def test_a_reply_threads_by_references_to_our_own_reply(support, agent, eml):
    first = support.mail.ingest(eml("outlook_quoted_printable.eml"))
    ours = support.tickets.reply(first.number, "A fix is deployed.", actor=agent.email)
    raw = eml(
        "gmail_reply_tracking_number.eml", {"[TK-0000-0000] ": "", "<reply-placeholder@example.com>": ours.message_id}
    )
    assert support.mail.ingest(raw).number == first.number


def test_an_unknown_tracking_number_opens_a_new_ticket(support, eml):
    result = support.mail.ingest(eml("outlook_reply_unknown_number.eml"))
    assert result.action == "created"
    assert support.tickets.messages(result.number)[0].body == "Is this still being looked at?"


def test_auto_replies_are_recognized_and_not_turned_into_tickets(support, crm, eml):
    for name in ("autoreply_auto_submitted.eml", "autoreply_x_autoreply.eml", "outlook_out_of_office.eml"):
        result = support.mail.ingest(eml(name))
        assert result.action == "ignored" and result.reason.startswith("auto-reply"), name
    assert support.tickets.list() == []
    with crm.transaction() as ctx:
        assert ctx.session.query(Contact).count() == 0


def test_a_bounce_is_not_a_ticket_but_a_note_on_the_ticket_it_belongs_to(support, agent, eml):
    first = support.mail.ingest(eml("outlook_quoted_printable.eml"))
    ours = support.tickets.reply(first.number, "Your account is closed.", actor=agent.email)
    bounce = support.mail.ingest(eml("bounce_postfix_dsn.eml", {"<reply-placeholder@example.com>": ours.message_id}))
    assert bounce.action == "ignored" and bounce.reason == "bounce: delivery status notification"
    assert bounce.number == first.number
    note = support.tickets.messages(first.number)[-1]
    assert (note.author_type, note.public) == ("system", False)
    assert note.body.startswith("Delivery failed: gone@example.net: 5.1.1 550 5.1.1")
    assert len(support.tickets.list()) == 1


def test_malformed_mail_is_refused_with_a_clear_error(support, eml):
    with pytest.raises(ValidationError, match="malformed message: no sender address"):
        support.mail.ingest(eml("malformed_no_sender.eml"))
    with pytest.raises(ValidationError, match="empty"):
        support.mail.ingest(b"")
    with pytest.raises(ValidationError, match="no sender"):
        support.mail.ingest(bytes(range(256)) * 10)
    assert support.tickets.list() == []


@pytest.mark.parametrize("ticketing_settings", [{"max_attachment_bytes": 50, "max_message_bytes": 4000}], indirect=True)
def test_huge_attachments_and_messages_are_refused_and_nothing_is_written(support, tmp_path, eml):
    with pytest.raises(ValidationError, match=r"capture écran.pdf \(77 bytes\)"):
        support.mail.ingest(eml("latin1_base64_attachment.eml"))
    with pytest.raises(ValidationError, match="over the 4,000-byte limit"):
        support.mail.ingest(eml("thunderbird_multipart_alternative.eml") + b"\r\n" + b"x" * 5000)
    assert support.tickets.list() == []
    assert not (tmp_path / "attachments").exists()


def test_the_same_message_twice_is_one_message(support, eml):
    first = support.mail.ingest(eml("thunderbird_multipart_alternative.eml"))
    again = support.mail.ingest(eml("thunderbird_multipart_alternative.eml"))
    assert again.action == "duplicate"
    assert len(support.tickets.list()) == 1 and len(support.tickets.messages(first.number)) == 1


@pytest.mark.parametrize(("ticketing_settings", "expected"), [({"reply_to_closed": "follow_up"}, "follow_up"),
                                                               ({"reply_to_closed": "reopen"}, "reopened")],
                         indirect=["ticketing_settings"])  # fmt: skip
def test_a_reply_to_a_closed_ticket_reopens_or_opens_a_follow_up_as_configured(support, expected, eml, mail_data):
    mode = "follow_up" if expected == "follow_up" else "reopen"
    first = support.mail.ingest(eml("thunderbird_multipart_alternative.eml"))
    support.tickets.close(first.number)
    result = support.mail.ingest(eml("applemail_reply_in_reply_to.eml"))
    assert result.action == expected
    if mode == "follow_up":
        follow = support.tickets.get(result.number)
        assert result.number != first.number and follow.follow_up_of_id == first.ticket_id
        assert support.tickets.get(first.number).status == "closed"
    else:
        assert result.number == first.number and support.tickets.get(first.number).status == "open"


DATA = Path(__file__).resolve().parent / "data"


def maildir(tmp_path: Path, names: list[str]) -> Path:
    """A Maildir with *names* (fixture files) in new/."""
    folder = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (folder / sub).mkdir(parents=True)
    for index, name in enumerate(names):
        shutil.copy(DATA / name, folder / "new" / f"17676{index:05d}.M{index}P1.mail")
    return folder


MAILDIR_FILES = [
    "thunderbird_multipart_alternative.eml",
    "applemail_reply_in_reply_to.eml",
    "autoreply_auto_submitted.eml",
    "malformed_no_sender.eml",
]


@pytest.mark.parametrize("ticketing_settings", [{"maildir": "{tmp}/Maildir"}], indirect=True)
def test_the_maildir_poller_is_a_periodic_job(crm, support, run_due_jobs, tmp_path):
    folder = maildir(tmp_path, MAILDIR_FILES)
    assert "ticketing.poll_maildir" in crm.jobs.periodic
    run_due_jobs()
    [ticket] = support.tickets.list()
    assert len(support.tickets.messages(ticket.number)) == 2
    assert list((folder / "new").iterdir()) == []
    assert len(list((folder / "cur").iterdir())) == 3 and all(
        p.name.endswith(":2,S") for p in (folder / "cur").iterdir()
    )
    assert [p.name for p in (folder / ".Rejected" / "cur").iterdir()] == ["1767600003.M3P1.mail:2,S"]


def test_a_crash_before_the_files_moved_is_harmless_on_the_next_poll(support, tmp_path, crm):
    folder = maildir(tmp_path, ["thunderbird_multipart_alternative.eml", "outlook_quoted_printable.eml"])
    first = support.mail.poll_maildir(folder)
    assert [r.action for r in first] == ["created", "created"]
    # simulate a crash between the commit and the move: put the files back in new/
    for path in (folder / "cur").iterdir():
        path.rename(folder / "new" / path.name.removesuffix(":2,S"))
    second = support.mail.poll_maildir(folder)
    assert [r.action for r in second] == ["duplicate", "duplicate"]
    with crm.transaction() as ctx:
        assert ctx.session.query(Ticket).count() == 2
    assert list((folder / "new").iterdir()) == []


def test_a_bad_message_in_a_batch_is_rejected_alone(support, eml):
    results = support.mail.ingest_many([
        ("a.eml", eml("outlook_quoted_printable.eml")), ("b.eml", eml("malformed_no_sender.eml")),
        ("c.eml", eml("latin1_base64_attachment.eml")),
    ])  # fmt: skip
    assert [r.action for r in results] == ["created", "rejected", "created"]
    assert len(support.tickets.list()) == 2


def test_a_mailbox_batch_threads_within_itself_rejects_the_bad_message_alone_and_reruns_to_nothing(
    support, crm, eml, standard_policy, clock
):
    from crmcore_ticketing.models import HistoryEntry, SlaMetric

    from crmcore.models import Job

    too_long = (b"From: Bob <bob@example.com>\r\nTo: support@example.com\r\nSubject: Log file\r\n"
                b"Message-ID: <too-long@example.com>\r\n\r\n" + b"x" * 100_001)  # fmt: skip
    batch = [
        ("a.eml", eml("thunderbird_multipart_alternative.eml")),
        ("b.eml", too_long),  # parses, then refused inside its savepoint (the body is over the limit)
        ("c.eml", eml("malformed_no_sender.eml")),  # refused while parsing
        ("d.eml", eml("applemail_reply_in_reply_to.eml")),  # a reply to a.eml, in the same batch
        ("e.eml", eml("latin1_base64_attachment.eml")),
    ]

    def counts() -> tuple[int, int, int, int]:
        with crm.transaction(readonly=True) as ctx:
            return (ctx.session.query(Ticket).count(), ctx.session.query(HistoryEntry).count(),
                    ctx.session.query(SlaMetric).count(), ctx.session.query(Job).count())  # fmt: skip

    results = support.mail.ingest_many(batch)
    assert [(r.source, r.action) for r in results] == [
        ("a.eml", "created"), ("b.eml", "rejected"), ("c.eml", "rejected"), ("d.eml", "appended"),
        ("e.eml", "created")]  # fmt: skip
    assert "body: is longer than 100,000 characters" in results[1].reason
    assert "no sender address in From" in results[2].reason
    assert results[3].number == results[0].number
    thread = support.tickets.messages(results[0].number)
    assert thread[-1].body == "Nachtrag: Der Fehler kommt auch nach dem Neustart wieder.\n\nJürgen"
    fields = [h.field for h in support.tickets.history(results[0].number)]
    assert fields == ["created", "message"]
    # two tickets, each with a first-reply and a resolution run and one pending timer per run
    tickets, history, runs, jobs = counts()
    assert (tickets, history, runs) == (2, 3, 4)
    with crm.transaction(readonly=True) as ctx:
        timers = ctx.session.query(Job).filter(Job.handler == "ticketing.sla").all()
        by_run = {r.id: r for r in ctx.session.query(SlaMetric)}
        assert sorted(j.payload["metric_id"] for j in timers) == sorted(by_run)
        assert all(j.due_at == by_run[j.payload["metric_id"]].timer_at for j in timers)
        assert ctx.session.query(Contact).filter(Contact.email == "bob@example.com").count() == 0
    again = support.mail.ingest_many(batch)
    assert [r.action for r in again] == ["duplicate", "rejected", "rejected", "duplicate", "duplicate"]
    assert counts() == (tickets, history, runs, jobs)

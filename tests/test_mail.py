"""Mail through the outbox to a real SMTP server: sent once, retried when temporary, recorded."""

from __future__ import annotations

import pytest

from crmcore import hookimpl
from crmcore.mail import MailMessage, html_to_text, queue_mail


@pytest.fixture
def crm_settings(smtp_settings):
    return smtp_settings


class Failures:
    def __init__(self):
        self.failed = []

    @hookimpl
    def crm_mail_failed(self, event, ctx):
        self.failed.append((event.recipient, event.code))


@pytest.fixture
def failures():
    return Failures()


@pytest.fixture
def crm_plugins(failures):
    return [failures]


def queue(crm, to, key, **extra):
    with crm.transaction() as ctx:
        queue_mail(
            ctx,
            MailMessage(to=to, subject="Welcome", html="<p>Hello <a href='https://x.test/a'>you</a></p>", **extra),
            key=key,
        )


def test_queued_mail_arrives_once_with_text_and_html(crm, smtp_server, run_due_jobs):
    queue(crm, "ada@example.com", "welcome:1")
    queue(crm, "ada@example.com", "welcome:1")  # the same key is one message
    assert smtp_server.messages == []  # nothing leaves before a worker runs
    run_due_jobs()
    run_due_jobs()
    [message] = smtp_server.to("ada@example.com")
    assert message["Subject"] == "Welcome"
    assert message.get_body(("plain",)).get_content().strip() == "Hello you (https://x.test/a)"
    assert "<a href='https://x.test/a'>" in message.get_body(("html",)).get_content()


def test_rolled_back_transaction_sends_nothing(crm, smtp_server, run_due_jobs):
    with pytest.raises(RuntimeError), crm.transaction() as ctx:
        queue_mail(ctx, MailMessage(to="ada@example.com", subject="x", text="x"), key="k")
        raise RuntimeError("abort")
    run_due_jobs()
    assert smtp_server.messages == []


def test_temporary_refusal_is_retried_then_delivered(crm, smtp_server, run_due_jobs, clock):
    smtp_server.fail_next(1, "451 4.3.0 greylisted")
    queue(crm, "ada@example.com", "k1")
    run_due_jobs()
    assert smtp_server.messages == []
    [job] = crm.jobs.list(handler="core.send_mail")
    assert job.state == "pending" and "451" in job.last_error
    clock.advance(minutes=5)
    run_due_jobs()
    assert len(smtp_server.messages) == 1


def test_permanent_refusal_is_recorded_and_reported_not_retried(crm, smtp_server, run_due_jobs, failures, clock):
    smtp_server.refuse["ghost@example.com"] = "550 5.1.1 no such user"
    queue(crm, "ghost@example.com", "k2")
    run_due_jobs()
    clock.advance(hours=2)
    run_due_jobs()
    assert failures.failed == [("ghost@example.com", 550)]
    assert [j.state for j in crm.jobs.list(handler="core.send_mail")] == ["done"]


def test_a_non_ascii_address_goes_out_with_smtputf8_or_fails_for_good_without_it(crm_factory, failures):
    from crmcore.testing.smtp import SMTPSink

    for smtputf8 in (True, False):
        server = SMTPSink(smtputf8=smtputf8).start()
        try:
            crm = crm_factory(plugins=[failures], mail_transport="smtp", smtp_host="127.0.0.1", smtp_port=server.port)
            queue(crm, "Jürgen Müller-Lüdenscheidt vom Großen Wörthersee <jürgen@example.com>", f"k5:{smtputf8}")
            crm.jobs.run_due()
        finally:
            server.stop()
        if smtputf8:
            [message] = server.messages
            assert server.envelopes[0][1] == ["jürgen@example.com"]
            assert message["To"].addresses[0].display_name == "Jürgen Müller-Lüdenscheidt vom Großen Wörthersee"
        else:
            assert server.messages == [] and [code for _, code in failures.failed] == [None]
            [delivery] = [d for d in _deliveries(crm) if d.status == "failed"]
            assert "SMTPUTF8" in delivery.error


def _deliveries(crm):
    from sqlalchemy import select

    from crmcore.models import MailDelivery

    with crm.transaction(readonly=True) as ctx:
        return ctx.session.scalars(select(MailDelivery)).all()


def test_unreachable_server_is_temporary(crm_factory, run_due_jobs):
    crm = crm_factory(mail_transport="smtp", smtp_port=1)
    queue(crm, "ada@example.com", "k3")
    crm.jobs.run_due()
    [job] = crm.jobs.list(handler="core.send_mail")
    assert job.state == "pending" and "cannot reach the mail server" in job.last_error


def test_file_transport_writes_eml_files(crm_factory, tmp_path):
    crm = crm_factory(mail_transport="file", mail_dir=str(tmp_path / "out"))
    queue(crm, "ada@example.com", "k4")
    crm.jobs.run_due()
    [path] = list((tmp_path / "out").glob("*.eml"))
    assert b"Subject: Welcome" in path.read_bytes()


def test_html_to_text_drops_styles_and_keeps_structure():
    text = html_to_text("<html><head><style>p{}</style></head><body><h1>Hi</h1><p>A&amp;B</p><ul><li>one</li></ul>")
    assert text == "Hi\n\nA&B\n\n- one\n"


def test_built_message_reads_back_exactly_with_non_ascii_headers_and_attachments():
    import email
    import email.policy

    from crmcore.mail import Attachment, build_mime
    from crmcore.settings import Settings

    long_subject = "Grüße aus Köln: unser Frühlingsangebot gilt nur noch diese Woche, für alle Stammkunden"
    message = MailMessage(
        to="Zoë Müller <zoe@example.com>", subject=long_subject, sender="\"Café Olé, Shop\" <news@example.com>",
        html="<p>Hällo =3D &amp; bye</p>\n<p>" + "x" * 120 + " </p>", text="Hällo =3D\n.dot line  \nend",
        reply_to="Support <help@example.com>", headers={"X-Campaign": "spring " * 20},
        attachments=(Attachment(filename="Rechnung März.pdf", content_type="application/pdf", data=bytes(range(256))),),
    )  # fmt: skip
    built = build_mime(message, Settings())
    assert (built.sender, built.recipient, built.international) == ("news@example.com", "zoe@example.com", False)
    assert max(len(line) for line in built.data.split(b"\r\n")) <= 998 and built.data.isascii()
    parsed = email.message_from_bytes(built.data, policy=email.policy.default)
    assert parsed.defects == [] and not any(part.defects for part in parsed.walk())
    assert parsed["Subject"] == long_subject
    assert parsed["From"].addresses[0].display_name == "Café Olé, Shop"
    assert parsed["To"].addresses[0].username == "zoe" and parsed["To"].addresses[0].display_name == "Zoë Müller"
    assert parsed["Reply-To"] == "Support <help@example.com>" and parsed["X-Campaign"] == "spring " * 20
    assert parsed["Message-ID"] == built.message_id
    assert _lines(parsed.get_body(("plain",))) == ["Hällo =3D", ".dot line  ", "end"]
    assert _lines(parsed.get_body(("html",))) == ["<p>Hällo =3D &amp; bye</p>", "<p>" + "x" * 120 + " </p>"]
    [attachment] = parsed.iter_attachments()
    assert attachment.get_filename() == "Rechnung März.pdf" and attachment.get_content() == bytes(range(256))


def test_a_line_break_in_a_header_is_refused():
    from crmcore.mail import build_mime
    from crmcore.settings import Settings

    with pytest.raises(ValueError, match="line break"):
        build_mime(MailMessage(to="ada@example.com", subject="Hi\r\nBcc: everyone@example.com", text="x"), Settings())


def _lines(part):
    return part.get_content().splitlines()


def test_html_to_text_skips_scripts_and_comments_and_keeps_links_and_stray_brackets():
    html = (
        "<!doctype html><!-- a <p>comment</p> --><script>if (a<b) document.write('<p>x</p>')</script>"
        "<P>1 < 2 &amp; 3<br/>next</P><a HREF='https://e.test/?a=1&amp;b=2' title=\"a>b\">Shop</a>"
        "<a href=\"mailto:x@e.test\">Write</a>"
    )
    assert html_to_text(html) == "1 < 2 & 3\nnextShop (https://e.test/?a=1&b=2)Write\n"

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

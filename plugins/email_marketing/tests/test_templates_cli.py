"""Templates (sandboxed, autoescaped, errors naming the line) and the ``crm campaign``/``crm template`` commands."""

from __future__ import annotations

import json

import pytest
from crmcore_email_marketing.rendering import TemplateProblem

from crmcore.errors import ValidationError


def test_a_syntax_error_names_the_part_and_line_and_nothing_is_saved(em):
    with pytest.raises(TemplateProblem) as problem:
        em.templates.create(
            "broken", subject="Hi {{ contact.first_name", html="<p>ok</p>\n<p>{{ contact.first_name | }}</p>\n"
        )
    assert problem.value.errors["subject"].startswith("subject, line 1: syntax error")
    assert problem.value.errors["html"].startswith("html, line 2: syntax error")
    assert em.templates.list() == []


def test_an_unknown_field_is_caught_before_any_send_naming_the_line(em):
    with pytest.raises(TemplateProblem) as problem:
        em.templates.create("typo", subject="Hi", html="<p>Hello</p>\n<p>{{ contact.frist_name }}</p>")
    assert problem.value.errors == {"html": "html, line 2: unknown name: 'dict object' has no attribute 'frist_name'"}


def test_the_sandbox_refuses_python_internals(em):
    with pytest.raises(TemplateProblem, match="not allowed in a template"):
        em.templates.create("evil", subject="Hi", html="{{ contact.__class__.__mro__ }}")
    with pytest.raises(TemplateProblem, match="not allowed in a template"):
        em.templates.create("evil", subject="Hi", html="{{ ''.__class__.__subclasses__() }}")


def test_preview_personalizes_with_fallbacks_escapes_html_and_writes_the_text_part(crm, em, newsletter):
    crm.contacts.add(email="ada@example.com", first_name="<b>Ada</b>")
    crm.contacts.add(email="anon@example.com")
    ada = em.templates.preview("newsletter", "ada@example.com")
    assert ada["subject"] == "News for <b>Ada</b>"
    assert "<h1>Hello &lt;b&gt;Ada&lt;/b&gt;</h1>" in ada["html"]  # autoescaped in the HTML
    assert "Hello <b>Ada</b>" in ada["text"]  # text generated from the HTML, unescaped
    anon = em.templates.preview("newsletter", "anon@example.com")
    assert anon["subject"] == "News for you" and "<h1>Hello there</h1>" in anon["html"]
    assert "Unsubscribe" in anon["html"]  # the shared layout's footer


def test_custom_fields_personalize_and_a_written_text_part_is_used(crm, em):
    from crmcore.registry import CustomFieldSpec

    crm.custom_fields.define(CustomFieldSpec(name="plan", label="Plan"))
    crm.contacts.add(email="ada@example.com", custom={"plan": "Pro"})
    em.templates.create("plan", subject="Your {{ contact.custom.plan or 'free' }} plan", html="<p>Hi</p>",
                        text="Your plan: {{ contact.custom.plan }}")  # fmt: skip
    rendered = em.templates.preview("plan", "ada@example.com")
    assert rendered["subject"] == "Your Pro plan" and rendered["text"] == "Your plan: Pro"


def test_campaign_commands(cli, em, newsletter, people, run_due_jobs, smtp_server):
    created = cli("campaign", "create", "Spring", "--template", "newsletter", "--segment", "germans",
                  "--budget", "300", "--cost", "75.5", "--format", "json")  # fmt: skip
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["state"] == "draft"
    assert "Spring" in cli("campaign", "list").output
    assert cli("campaign", "send", "Spring").exit_code == 0
    run_due_jobs()
    stats = json.loads(cli("campaign", "stats", "Spring", "--format", "json").output)
    assert (stats["sent"], stats["state"], stats["cost"]) == (3, "done", "75.50")
    assert {m["To"] for m in smtp_server.messages} == {"ada@example.com", "alan@example.com", "barbara@example.com"}
    again = cli("campaign", "send", "Spring")
    assert again.exit_code == 1 and "only a draft or scheduled one can be sent" in again.output
    unknown = cli("campaign", "show", "Nope")
    assert unknown.exit_code == 1 and "no campaign 'Nope'" in unknown.output
    preview = cli("template", "preview", "newsletter", "--contact", "ada@example.com", "--part", "subject")
    assert preview.output.strip() == "News for Ada"
    skipped = cli("campaign", "stats", "Spring", "--skipped", "--format", "csv")
    assert skipped.exit_code == 0 and skipped.output.splitlines()[0] == "contact_id,email,status,reason"


def test_template_command_reports_the_line(cli, tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<p>one</p>\n<p>{{ contact.nope }}</p>\n")
    result = cli("template", "create", "bad", "--subject", "Hi", "--html-file", str(page))
    assert result.exit_code == 1 and "line 2" in result.output and "nope" in result.output


def test_schedule_and_ab_options_are_validated(em, newsletter):
    em.campaigns.create("Spring", template="newsletter", segment="everyone")
    with pytest.raises(ValidationError) as bad:
        em.campaigns.ab_test("Spring", {"A": "One"}, metric="likes", sample_percent=0)
    assert set(bad.value.errors) == {"metric", "subjects", "sample_percent"}
    with pytest.raises(ValidationError, match="is not YYYY-MM-DDTHH:MM"):
        em.campaigns.schedule("Spring", local_time="tomorrow 9am")
    with pytest.raises(ValidationError):
        em.campaigns.schedule("Spring")

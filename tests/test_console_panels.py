"""Plugins in the console: survey answers and invoices on the contact page, email campaigns on the
campaigns page, each shown only to users whose role grants the plugin's permission, in their language."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from crmcore.testing.server import live_server

from .console_support import SETTINGS, client_for, seed

NPS = {
    "key": "nps", "title": "Would you recommend us?", "default_language": "en",
    "questions": [{"key": "score", "kind": "nps", "required": True, "text": "How likely are you to recommend us?"},
                  {"key": "why", "kind": "text", "text": "Why?"}],
}  # fmt: skip


@pytest.fixture
def crm_plugins():
    return ["ticketing", "surveys", "accounting_bridge", "email_marketing"]


@pytest.fixture
def crm_settings(tmp_path):
    return {**SETTINGS, "mail_dir": str(tmp_path / "outbox"),
            "plugin_settings": {"surveys": {"require_consent": False, "detractor_action": "none"}}}  # fmt: skip


@pytest.fixture
def site(crm, run_due_jobs, clock):
    from crmcore_accounting_bridge import accounting
    from crmcore_email_marketing import email_marketing
    from crmcore_surveys import surveys
    from crmcore_surveys.service import invitation_url

    data = seed(crm)
    lead = data["rita_lead"]
    service = surveys(crm)
    service.surveys.create(NPS)
    service.surveys.activate("nps")
    invitation = service.surveys.invite("nps", lead.id)
    run_due_jobs()
    token = invitation_url(crm, invitation.id).rsplit("/", 1)[-1]
    service.answers.submit(token, {"score": "4", "why": "Support <b>took</b> a week"})
    crm.products.add("PRO", "CRM Pro licence", unit_price="100.00", currency="USD")
    data["invoice"] = accounting(crm).invoices.create(lead.id, lines=[{"sku": "PRO"}], terms_days=10)
    clock.advance(timedelta(days=15))  # the invoice is now overdue
    email = email_marketing(crm)
    email.templates.create("spring", subject="Spring offers", html="<p>Hello</p>")
    email.campaigns.create("Spring sale", template="spring", segment="customers", budget="500", cost="120")
    with live_server(crm.asgi_app()) as base_url:
        data["url"] = base_url
        yield data


def panel(html: str, title: str) -> str | None:
    """The HTML of the panel titled *title* on a page, or None when the page has none."""
    found = re.search(rf'<section class="card[^"]*panel"><h2>{re.escape(title)}</h2>(.*?)</section>', html, re.S)
    return found.group(1) if found else None


def test_a_manager_sees_survey_answers_and_invoices_on_the_contact_page(crm, site):
    with client_for(site["url"], "mia@example.com") as client:
        html = client.get(f"/console/contacts/{site['rita_lead'].id}").text
    answers = panel(html, "Survey answers")
    assert "Would you recommend us?" in answers and "NPS 4" in answers and "detractor" in answers
    assert "Support &lt;b&gt;took&lt;/b&gt; a week" in answers  # what the customer typed stays text
    invoices = panel(html, "Invoices")
    number = site["invoice"].number
    assert number in invoices and "$100.00" in invoices and "overdue" in invoices
    assert panel(html, "Tickets") is not None


def test_a_user_without_the_permission_sees_no_panel(crm, site):
    lead = site["rita_lead"].id
    with client_for(site["url"], "mark@example.com") as client:  # a marketer: surveys.view, not accounting.view
        html = client.get(f"/console/contacts/{lead}").text
        assert panel(html, "Survey answers") is not None
        assert panel(html, "Invoices") is None and site["invoice"].number not in html
    crm.roles.revoke("manager", "surveys.view")
    with client_for(site["url"], "mia@example.com") as client:
        html = client.get(f"/console/contacts/{lead}").text
        assert panel(html, "Survey answers") is None and "Support" not in html
        assert panel(html, "Invoices") is not None


def test_plugin_panels_speak_persian(crm, site):
    with client_for(site["url"], "mia@example.com") as client:
        client.cookies.set("crm_lang", "fa", path="/console")
        html = client.get(f"/console/contacts/{site['rita_lead'].id}").text
    assert '<html lang="fa" dir="rtl">' in html
    assert "منتقد" in panel(html, "پاسخ‌های نظرسنجی")  # "detractor" in "Survey answers"
    assert "سررسید گذشته" in panel(html, "فاکتورها")  # "overdue" in "Invoices"
    timeline = re.search(r'<ol class="timeline" id="timeline">(.*?)</ol>', html, re.S).group(1)
    from babel.numbers import format_currency

    number = site["invoice"].number
    invoice = re.search(rf'<span class="badge">([^<]*)</span> ([^<]*{re.escape(number)}[^<]*)</li>', timeline)
    assert invoice is not None and invoice.group(1) == "فاکتور"  # the kind "invoice"
    assert invoice.group(2).startswith(f"فاکتور {number}: {format_currency(100, 'USD', locale='fa')}")
    assert "Invoice" not in timeline and "due" not in timeline


def test_the_campaigns_page_lists_email_campaigns_with_budget_and_cost(crm, site):
    with client_for(site["url"], "mark@example.com") as client:
        html = client.get("/console/campaigns").text
        campaigns = panel(html, "Email campaigns")
        row = re.search(r"<tr><td>Spring sale</td>(.*?)</tr>", campaigns, re.S).group(1)
        assert "draft" in row and "$500.00" in row and "$120.00" in row and "not sent in this range" in row
        client.cookies.set("crm_lang", "fa", path="/console")
        persian = client.get("/console/campaigns").text
        assert panel(persian, "کارزارهای ایمیلی") is not None and "پیش‌نویس" in persian  # "draft"
    with client_for(site["url"], "alex@example.com") as client:  # an agent: no reports.view
        assert client.get("/console/campaigns").status_code == 403

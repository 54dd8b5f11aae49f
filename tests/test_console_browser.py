"""The console in a real browser: headless Chromium from Debian, driven by Playwright.

A manager signs in; a customer asks for help through the public support form in
another tab (which captures them as a lead); the manager finds the lead, qualifies
it, opens an opportunity, moves it on the board, answers the ticket, looks at the
page and the report dashboard in Persian (right to left) and on a phone, and signs
out. Screenshots of each page are kept under ``test-artifacts/console/``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from crmcore.testing.server import live_server

from .console_support import PASSWORD, SETTINGS, seed

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "console"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.databases("sqlite"),  # the browser does not care which database is behind
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium); CI installs it"),
]


@pytest.fixture
def crm_plugins():
    return ["ticketing"]


@pytest.fixture
def crm_settings(tmp_path):
    return {**SETTINGS, "mail_dir": str(tmp_path / "outbox")}


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_a_day_in_the_console(crm, browser):
    from crmcore_ticketing import ticketing

    seed(crm)
    crm.users.manage_team("mia@example.com", "west")  # Mia reaches every rep's leads
    with live_server(crm.asgi_app()) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
        console = context.new_page()
        errors: list[str] = []
        console.on("pageerror", lambda exc: errors.append(str(exc)))
        console.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

        console.goto(f"{url}/console/")
        assert console.url.startswith(f"{url}/console/login?next=")
        shot(console, "01-login")
        console.fill("#email", "mia@example.com")
        console.fill("#password", PASSWORD)
        console.click("button[type=submit]")
        console.wait_for_selector("h1:has-text('My day')")
        shot(console, "02-my-day")

        form = context.new_page()  # the customer, in another tab
        form.goto(f"{url}/ticketing/support")
        form.fill("#name", "Nadia Karimi")
        form.fill("#email", "nadia@example.net")
        form.fill("#subject", "Invoice shows the wrong address")
        form.fill("#message", "Please correct the street name on invoice 2031.")
        form.click("button[type=submit]")
        form.wait_for_load_state()
        assert "TK-" in form.content()
        shot(form, "03-support-form-sent")

        console.bring_to_front()
        console.fill("header input[name=q]", "nadia")
        console.press("header input[name=q]", "Enter")
        console.wait_for_selector("#results a:has-text('Nadia Karimi')")
        shot(console, "04-search")
        console.click("#results a:has-text('Nadia Karimi')")
        console.wait_for_selector("h1:has-text('Nadia Karimi')")
        assert "lead" in console.inner_text("h1 .badge")

        console.click("summary:has-text('Qualify')")
        console.fill("form[action$='/qualify'] input[name=reason]", "Wants a yearly plan")
        console.click("form[action$='/qualify'] button")
        console.wait_for_selector("h1 .badge:has-text('prospect')")
        console.click("summary:has-text('Open an opportunity')")
        console.fill("form[action$='/opportunities'] input[name=name]", "Nadia yearly plan")
        console.fill("form[action$='/opportunities'] input[name=amount]", "480")
        console.click("form[action$='/opportunities'] button")
        console.wait_for_selector("text=Nadia yearly plan")
        assert "Invoice shows the wrong address" in console.inner_text(".panel")  # the ticketing panel
        shot(console, "05-contact")

        console.click("nav.menu a:has-text('Pipeline')")
        card = console.locator("article.deal", has_text="Nadia yearly plan")
        card.locator("select[name=stage]").select_option("proposal")
        card.locator("button:has-text('Move')").click()  # htmx swaps the board in place
        moved = console.locator("section.column[data-stage=proposal] article.deal", has_text="Nadia yearly plan")
        moved.wait_for()
        assert console.url.endswith("/console/pipeline")  # no page load: htmx did it
        shot(console, "06-pipeline")

        console.click("nav.menu a:has-text('Campaigns')")
        console.wait_for_selector("#lifecycle-funnel .step")
        assert console.locator("#pipeline-funnel .step", has_text="Proposal").count() == 1
        shot(console, "06b-campaigns")

        console.click("nav.menu a:has-text('Tickets')")
        console.click("a:has-text('TK-')")
        console.wait_for_selector("text=Please correct the street name")
        console.fill("textarea[name=body]", "Corrected; a new invoice is on its way.")
        console.select_option("select[name=status]", "solved")
        console.click("button:has-text('Send')")
        console.wait_for_selector(".thread pre:has-text('a new invoice is on its way')")
        shot(console, "07-ticket")
        (ticket,) = ticketing(crm).tickets.list(requester="nadia@example.net")
        assert ticket.status == "solved"

        console.click("a.lang:has-text('fa')")
        console.wait_for_selector("html[dir=rtl]")
        assert console.evaluate("getComputedStyle(document.body).direction") == "rtl"
        assert "تیکت" in console.inner_text("nav.menu")
        shot(console, "08-ticket-persian-rtl")
        contact_id = crm.contacts.get("nadia@example.net").id
        console.goto(f"{url}/console/contacts/{contact_id}")
        tickets = console.locator("section.panel", has_text="تیکت‌ها")  # the ticketing panel, in Persian
        assert "حل شده" in tickets.inner_text()  # the ticket's status "solved"
        shot(console, "09-contact-persian-rtl")
        console.click("nav.menu a:has-text('گزارش‌ها')")  # "Reports": the dashboard in Persian
        pipeline = console.locator("section#sales-pipeline")
        pipeline.locator("h3", has_text="قیف فروش به تفکیک مرحله، با ارزش وزن‌دار").wait_for()
        assert console.evaluate("document.documentElement.dir") == "rtl"
        assert "ارزیابی اولیه" in pipeline.locator("table").inner_text()  # the stage "Qualification"
        assert pipeline.locator("svg.chart").count() == 1  # its funnel, labels drawn in Persian
        shot(console, "09b-reports-persian-rtl")

        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                    storage_state=context.storage_state())  # fmt: skip
        small = phone.new_page()
        small.goto(f"{url}/console/contacts/{contact_id}")
        small.wait_for_selector("h1")
        assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), "no sideways scroll"
        shot(small, "10-contact-phone")
        phone.close()

        console.click("button:has-text('خروج')")  # "Sign out" in Persian
        console.wait_for_selector("#password")
        assert re.search(r"/console/login$", console.url)
        console.goto(f"{url}/console/")
        assert "/console/login" in console.url
        shot(console, "11-signed-out")
        context.close()
        assert not errors, errors
    stage = crm.sales.list_opportunities(search="Nadia")[0].stage_id
    assert crm.sales.stage_keys()[stage] == "proposal"


def test_plugin_panels_follow_permissions_in_the_browser(crm_factory, browser, tmp_path):
    """Survey answers and invoices on the contact page, email campaigns on the campaigns page: a
    manager sees them all; a marketer (no ``accounting.view``) sees no invoices."""
    from crmcore_accounting_bridge import accounting
    from crmcore_email_marketing import email_marketing
    from crmcore_surveys import surveys
    from crmcore_surveys.service import invitation_url

    crm = crm_factory(plugins=["ticketing", "surveys", "accounting_bridge", "email_marketing"], **SETTINGS,
                      mail_dir=str(tmp_path / "outbox"),
                      plugin_settings={"surveys": {"require_consent": False, "detractor_action": "none"}})  # fmt: skip
    lead = seed(crm)["rita_lead"]
    service = surveys(crm)
    service.surveys.create({"key": "csat", "title": "How did we do?", "default_language": "en",
                            "questions": [{"key": "score", "kind": "csat", "text": "Your rating"}]})  # fmt: skip
    service.surveys.activate("csat")
    invitation = service.surveys.invite("csat", lead.id)
    crm.jobs.run_due()
    service.answers.submit(invitation_url(crm, invitation.id).rsplit("/", 1)[-1], {"score": "5"})
    crm.products.add("PRO", "CRM Pro licence", unit_price="100.00", currency="USD")
    invoice = accounting(crm).invoices.create(lead.id, lines=[{"sku": "PRO"}])
    email_marketing(crm).templates.create("spring", subject="Spring offers", html="<p>Hello</p>")
    email_marketing(crm).campaigns.create("Spring sale", template="spring", segment="customers", budget="500")
    with live_server(crm.asgi_app()) as url:
        for email, sees_invoices in (("mia@example.com", True), ("mark@example.com", False)):
            context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
            page = context.new_page()
            page.goto(f"{url}/console/login")
            page.fill("#email", email)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("h1:has-text('My day')")
            page.goto(f"{url}/console/contacts/{lead.id}")
            answers = page.locator("section.panel", has_text="Survey answers")
            assert "How did we do?" in answers.inner_text() and "promoter" in answers.inner_text()
            invoices = page.locator("section.panel", has=page.locator("h2", has_text="Invoices"))
            assert invoices.count() == (1 if sees_invoices else 0), email
            assert (invoice.number in page.content()) == sees_invoices
            shot(page, f"12-contact-panels-{email.split('@')[0]}")
            page.click("nav.menu a:has-text('Campaigns')")
            row = page.locator("section.panel tr", has_text="Spring sale")
            assert "$500.00" in row.inner_text()
            shot(page, f"13-campaigns-{email.split('@')[0]}")
            context.close()

"""Unsubscribes, bounces, complaints, opens, clicks and conversions, over real HTTP and real messages."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from crmcore_email_marketing.models import Conversion, LinkClick, Recipient
from sqlalchemy import select

from crmcore.errors import ValidationError
from crmcore.models import Touchpoint

from .conftest import load_eml


@pytest.fixture
def sent(crm: Any, em: Any, newsletter: Any, people: Any, smtp_server: Any, run_due_jobs: Any) -> Any:
    """The newsletter campaign, delivered to the six contacts with an address."""
    campaign = em.campaigns.create("Spring", template="newsletter", segment="everyone", cost="60.00")
    em.campaigns.send("Spring")
    run_due_jobs()
    assert len(smtp_server.messages) == 6
    return campaign


def _recipient(crm: Any, campaign_id: int, email: str) -> Recipient:
    with crm.transaction(readonly=True) as ctx:
        return ctx.session.scalars(
            select(Recipient).where(Recipient.campaign_id == campaign_id, Recipient.email == email)
        ).one()


def _links(message: Any) -> list[str]:
    html = message.get_body(("html",)).get_content()
    return [url.replace("&amp;", "&") for url in re.findall(r'(?:href|src)="([^"]+)"', html)]


def test_one_click_unsubscribe_suppresses_withdraws_consent_and_is_honoured_next_time(
    crm, em, sent, smtp_server, http, run_due_jobs
):
    message = smtp_server.to("grace@example.com")[0]
    url = str(message["List-Unsubscribe"]).strip().strip("<>")
    path = url.removeprefix("https://crm.example.com")
    page = http.get(path)
    assert page.status_code == 200 and "<button" in page.text
    assert not em.suppressions.is_suppressed("grace@example.com")  # a link scanner's GET changes nothing

    done = http.post(path, data={"List-Unsubscribe": "One-Click"})  # what a mail client sends (RFC 8058)
    assert done.status_code == 200 and "unsubscribed" in done.text
    assert em.suppressions.is_suppressed("grace@example.com")
    grace = crm.contacts.get("grace@example.com")
    assert crm.consent.status(grace.id)[0]["status"] == "withdrawn"
    assert em.campaigns.stats("Spring")["unsubscribes"] == 1
    assert http.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200  # twice is harmless

    assert http.post(path[:-3] + "xyz").status_code == 400  # tampered

    em.campaigns.create("Summer", template="newsletter", segment="everyone")
    em.campaigns.send("Summer")
    run_due_jobs()
    assert len(smtp_server.to("grace@example.com")) == 1
    assert em.campaigns.skipped("Summer")[0]["reason"] == "suppressed (unsubscribe)"


def test_opens_and_clicks_are_recorded_per_recipient_link_and_campaign(crm, em, sent, smtp_server, http):
    message = smtp_server.to("ada@example.com")[0]
    links = _links(message)
    click = next(u for u in links if "/r/s/" in u)
    pixel = next(u for u in links if "/email/o/" in u)

    image = http.get(pixel.removeprefix("https://crm.example.com"))
    assert image.status_code == 200 and image.headers["content-type"] == "image/gif"
    http.get(pixel.removeprefix("https://crm.example.com"))  # a second open: counted, one touchpoint
    assert http.get("/email/o/forged.gif").status_code == 200  # still an image, nothing recorded

    redirect = http.get(click.removeprefix("https://crm.example.com"))
    assert redirect.status_code in (302, 303, 307)
    assert redirect.headers["location"] == "https://shop.example.com/spring?a=1&b=2"

    ada = _recipient(crm, sent.id, "ada@example.com")
    assert (ada.opens, ada.clicks) == (2, 1) and ada.opened_at and ada.clicked_at
    kinds = sorted(t.kind for t in crm.touchpoints.list("ada@example.com"))
    assert kinds == ["email_click", "email_open"]
    with crm.transaction(readonly=True) as ctx:
        touch = ctx.session.scalars(select(Touchpoint).where(Touchpoint.kind == "email_open")).one()
        assert (touch.campaign, touch.source) == ("Spring", "email")
        [link] = ctx.session.scalars(select(LinkClick)).all()
        assert link.url == "https://shop.example.com/spring?a=1&b=2"
    stats = em.campaigns.stats("Spring")
    assert (stats["unique_opens"], stats["unique_clicks"], stats["opens"], stats["click_through_rate"]) == (
        1, 1, 2, pytest.approx(1 / 6, abs=1e-5))  # fmt: skip


def test_a_purchase_counts_for_the_campaign_that_last_touched_the_buyer_within_the_window(
    crm, em, sent, smtp_server, http, clock, run_due_jobs
):
    pixel = next(u for u in _links(smtp_server.to("alan@example.com")[0]) if "/email/o/" in u)
    http.get(pixel.removeprefix("https://crm.example.com"))
    crm.products.add(sku="PRO", name="Pro plan")
    clock.advance(days=2)
    crm.customers.record_purchase("alan@example.com", sku="PRO", price="240.00", currency="USD")
    clock.advance(days=40)  # outside the 30-day window
    crm.customers.record_purchase("alan@example.com", sku="PRO", price="99.00", currency="USD")
    crm.customers.record_purchase("ada@example.com", sku="PRO", price="50.00", currency="USD")  # never engaged
    with crm.transaction(readonly=True) as ctx:
        [conversion] = ctx.session.scalars(select(Conversion)).all()
    assert conversion.amount == Decimal("240.00")
    stats = em.campaigns.stats("Spring")
    assert (stats["conversions"], stats["revenue"], stats["cost"]) == (1, Decimal("240.00"), Decimal("60.00"))
    assert stats["roi"] == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("name", "address", "kind", "suppressed"),
    [
        ("postfix_user_unknown.eml", "ada@example.com", "hard_bounce", True),
        ("gmail_nosuchuser_full_original.eml", "alan.gone@gmail.com", "hard_bounce", True),
        ("exim_mailbox_full_delayed.eml", "grace@example.org", "soft_bounce", False),
        ("arf_complaint_yahoo.eml", "donald@example.com", "complaint", True),
    ],
)
def test_bounce_and_complaint_reports_are_read_and_suppress_at_once(em, name, address, kind, suppressed):
    [outcome] = em.suppressions.ingest_report(load_eml(name).replace(b"{MESSAGE_ID}", b"<unknown@example.com>"))
    assert (outcome.email, outcome.kind, outcome.suppressed) == (address, kind, suppressed)
    assert em.suppressions.is_suppressed(address) is suppressed
    if kind == "hard_bounce":
        assert "5.1.1" in outcome.diagnostic


def test_a_bounce_is_matched_to_its_recipient_by_message_id(crm, em, sent, smtp_server):
    message_id = str(smtp_server.to("ada@example.com")[0]["Message-ID"]).strip()
    [outcome] = em.suppressions.ingest_report(load_eml("postfix_user_unknown.eml").replace(
        b"{MESSAGE_ID}", message_id.encode()))  # fmt: skip
    ada = _recipient(crm, sent.id, "ada@example.com")
    assert outcome.recipient_id == ada.id and ada.status == "bounced" and ada.bounced_at is not None
    complaint = load_eml("arf_complaint_yahoo.eml").replace(
        b"{MESSAGE_ID}", str(smtp_server.to("donald@example.com")[0]["Message-ID"]).strip().encode()
    )
    em.suppressions.ingest_report(complaint)
    stats = em.campaigns.stats("Spring")
    assert (stats["sent"], stats["bounced"], stats["delivered"], stats["complaints"]) == (6, 1, 5, 1)


def test_a_message_that_is_no_report_is_refused_and_nothing_is_written(em):
    with pytest.raises(ValidationError, match="not a delivery status notification"):
        em.suppressions.ingest_report(load_eml("not_a_report.eml"))
    assert em.suppressions.list() == []


def test_the_cli_ingests_reports_and_lists_the_suppressions(cli, tmp_path):
    from .conftest import DATA

    result = cli("suppression", "ingest", str(DATA / "postfix_user_unknown.eml"), str(DATA / "arf_complaint_yahoo.eml"))
    assert result.exit_code == 0, result.output
    listing = cli("suppression", "list", "--format", "csv").output
    assert "ada@example.com,bounce" in listing and "donald@example.com,complaint" in listing
    bad = cli("suppression", "ingest", str(DATA / "not_a_report.eml"))
    assert bad.exit_code == 1 and "not a delivery status notification" in bad.output

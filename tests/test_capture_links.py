"""Tracked links over real HTTP: short links, signed links, tampering, expiry, key rotation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from crmcore import CRM
from crmcore.errors import Conflict, ValidationError
from crmcore.links import signed_redirect_url
from crmcore.models import Touchpoint


def _touches(crm):
    with crm.transaction(readonly=True) as ctx:
        return list(ctx.session.scalars(select(Touchpoint).order_by(Touchpoint.id)))


def test_short_link_records_a_click_with_its_ad_and_redirects(http, crm, cli):
    result = cli(
        "link",
        "create",
        "--url",
        "https://shop.example.com/spring",
        "--code",
        "spring-ad",
        "--campaign",
        "spring",
        "--ad",
        "banner-1",
        "--source",
        "google",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    assert '"short_url": "http://127.0.0.1:8000/r/spring-ad"' in result.output

    answer = http.get(
        "/r/spring-ad?gclid=Cj0KCQ-abc_123&utm_medium=cpc",
        follow_redirects=False,
        headers={"referer": "https://www.google.com/"},
    )
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://shop.example.com/spring"
    assert "crm_clicks=" in answer.headers["set-cookie"]

    (touch,) = _touches(crm)
    assert (touch.kind, touch.campaign, touch.ad, touch.source) == ("ad_click", "spring", "banner-1", "google")
    assert (touch.click_id, touch.click_id_kind, touch.utm_medium) == ("Cj0KCQ-abc_123", "gclid", "cpc")
    assert touch.referrer == "https://www.google.com/" and touch.contact_id is None
    listed = cli("link", "list", "--format", "json")
    assert '"clicks": 1' in listed.output


def test_affiliate_link_records_an_affiliate_click(http, crm):
    crm.links.create("https://shop.example.com/", code="blog42", affiliate="blog-42")
    assert http.get("/r/blog42?subid=x1", follow_redirects=False).status_code == 302
    (touch,) = _touches(crm)
    assert (touch.kind, touch.affiliate, touch.link_id is not None) == ("affiliate_click", "blog-42", True)


def test_absurd_click_ids_are_dropped_but_the_click_still_arrives(http, crm):
    crm.links.create("https://shop.example.com/", code="ad1", ad="ad-1")
    answer = http.get("/r/ad1", params={"gclid": "x" * 5000, "utm_source": "a\x01b"}, follow_redirects=False)
    assert answer.status_code == 302
    (touch,) = _touches(crm)
    assert touch.click_id is None and touch.utm_source is None
    assert set(touch.details["dropped"]) == {"gclid", "utm_source"}


def test_unknown_short_code_is_404_and_records_nothing(http, crm):
    answer = http.get("/r/nope", follow_redirects=False)
    assert answer.status_code == 404 and "location" not in answer.headers
    assert _touches(crm) == []


def test_link_create_refuses_bad_urls_and_duplicate_codes(crm, cli):
    with pytest.raises(ValidationError) as refused:
        crm.links.create("javascript:alert(1)", code="bad code")
    assert set(refused.value.errors) == {"url", "code"}
    crm.links.create("https://example.com/", code="taken")
    with pytest.raises(Conflict):
        crm.links.create("https://example.com/other", code="taken")
    result = cli("link", "create", "--url", "ftp://example.com/")
    assert result.exit_code == 1 and "not an absolute http(s) URL" in result.output


def test_signed_link_records_the_contacts_click_with_details(http, crm):
    ada = crm.leads.capture(email="ada@example.com")
    url = signed_redirect_url(
        crm, "https://shop.example.com/offer?x=1", contact_id=ada.id, campaign="spring", details={"message_id": 7}
    )
    assert url.startswith("http://127.0.0.1:8000/r/s/")
    answer = http.get(url.removeprefix("http://127.0.0.1:8000"), follow_redirects=False)
    assert answer.status_code == 302 and answer.headers["location"] == "https://shop.example.com/offer?x=1"
    (touch,) = _touches(crm)
    assert (touch.contact_id, touch.kind, touch.campaign, touch.source) == (ada.id, "email_click", "spring", "email")
    assert touch.details["message_id"] == 7


def test_tampered_token_never_redirects_and_is_counted(http, crm):
    ada = crm.leads.capture(email="ada@example.com")
    path = signed_redirect_url(crm, "https://shop.example.com/", contact_id=ada.id).removeprefix(
        "http://127.0.0.1:8000"
    )
    forged = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    answer = http.get(forged, follow_redirects=False, headers={"accept": "text/html"})
    assert answer.status_code == 400 and "location" not in answer.headers
    assert "invalid link" in answer.text
    assert http.get("/r/s/not-a-token", follow_redirects=False).status_code == 400
    assert _touches(crm) == []
    assert crm.links.invalid_count() == 2


def test_expired_token_is_410(http, crm, clock):
    ada = crm.leads.capture(email="ada@example.com")
    path = signed_redirect_url(crm, "https://shop.example.com/", contact_id=ada.id).removeprefix(
        "http://127.0.0.1:8000"
    )
    clock.advance(timedelta(days=crm.settings.signed_link_max_age_days + 1))
    answer = http.get(path, follow_redirects=False, headers={"accept": "application/json"})
    assert answer.status_code == 410 and "location" not in answer.headers
    assert answer.json()["error"] == "this link has expired"
    assert _touches(crm) == [] and crm.links.invalid_count() == 1


def test_rotated_key_still_verifies_old_links(crm_factory, crm_backend):
    old = crm_factory(secret_key="the-old-secret-key-0001")
    ada = old.leads.capture(email="ada@example.com")
    url = signed_redirect_url(old, "https://shop.example.com/", contact_id=ada.id)
    token = url.rsplit("/", 1)[1]
    rotated = CRM(
        engine=old.engine,
        plugins=[],
        environment="test",
        clock=old.clock,
        secret_key="the-new-secret-key-0002",
        old_secret_keys="the-old-secret-key-0001",
    )
    assert rotated.links.follow_signed(token, _info()).url == "https://shop.example.com/"
    stranger = CRM(
        engine=old.engine, plugins=[], environment="test", clock=old.clock, secret_key="someone-elses-secret-key"
    )
    from crmcore.signing import InvalidToken

    with pytest.raises(InvalidToken):
        stranger.links.follow_signed(token, _info())


def _info():
    from crmcore.links import ClickInfo

    return ClickInfo()


def test_do_not_track_contact_is_counted_anonymously(http, crm):
    ada = crm.leads.capture(email="ada@example.com")
    crm.contacts.update(ada.id, do_not_track=True)
    url = signed_redirect_url(crm, "https://shop.example.com/", contact_id=ada.id, campaign="spring")
    assert http.get(url.removeprefix("http://127.0.0.1:8000"), follow_redirects=False).status_code == 302
    (touch,) = _touches(crm)
    assert touch.contact_id is None and touch.campaign == "spring"


def test_signed_url_refuses_unsafe_destinations(crm):
    with pytest.raises(ValidationError):
        signed_redirect_url(crm, "//evil.example.com/", contact_id=1)
    with pytest.raises(ValidationError):
        signed_redirect_url(crm, "https://ok.example.com/", contact_id=1, details={"x": "y" * 2000})


def test_consent_hookspec_is_published(crm):
    spec = crm.plugins.pm.hook.crm_form_consent_given.spec
    assert spec.argnames == ("contact_id", "form_slug", "purposes", "proof", "ctx")


def test_clicks_per_link_count(crm, http):
    crm.links.create("https://example.com/", code="a")
    for _ in range(3):
        http.get("/r/a", follow_redirects=False)
    with crm.transaction(readonly=True) as ctx:
        assert ctx.scalar(select(func.count(Touchpoint.id)).where(Touchpoint.link_id.is_not(None))) == 3
    assert crm.links.list()[0]["clicks"] == 3


def test_capture_migration_matches_the_models(crm):
    from crmcore.migrate import branch_heads, schema_diff

    assert len(branch_heads(crm, "core")) == 1
    assert schema_diff(crm) == []


def test_head_requests_are_answered_but_not_counted(http, crm):
    crm.links.create("https://example.com/", code="a")
    ada = crm.leads.capture(email="ada@example.com")
    signed = signed_redirect_url(crm, "https://example.com/s", contact_id=ada.id).removeprefix("http://127.0.0.1:8000")
    assert http.head("/r/a").headers["location"] == "https://example.com/"
    assert http.head(signed).headers["location"] == "https://example.com/s"
    forged = signed[:-3] + ("AAA" if not signed.endswith("AAA") else "BBB")
    assert http.head(forged).status_code == 400
    assert _touches(crm) == [] and crm.links.invalid_count() == 0

"""Web forms over real HTTP: rendering, validation, spam and abuse defences, consent, tracking."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from crmcore import hookimpl
from crmcore.errors import ValidationError
from crmcore.models import AuditEntry, Contact, Touchpoint

FIELDS = [
    {"name": "email", "type": "email", "required": True, "label": "Work email"},
    {"name": "first_name", "label": "First name"},
    {"name": "company_size", "type": "select", "choices": ["1-10", "11-50", "51+"]},
    {"name": "message", "type": "textarea"},
]


class ConsentLedger:
    """Stands in for crm.consent (contacts helper) until it is merged."""

    def __init__(self):
        self.grants = []

    @hookimpl
    def crm_form_consent_given(self, contact_id, form_slug, purposes, proof, ctx):
        self.grants.append({"contact_id": contact_id, "form": form_slug, "purposes": purposes, "proof": proof})


@pytest.fixture
def ledger():
    return ConsentLedger()


@pytest.fixture
def crm_plugins(ledger):
    return [ledger]


@pytest.fixture
def crm_settings():
    return {"form_rate_per_minute": 5}


@pytest.fixture
def demo_form(crm):
    return crm.forms.create(
        "demo", title="Book a demo", fields=FIELDS, consent_text="Send me product news by email.",
        consent_purposes=["marketing"], allowed_origins=["https://www.example.com"], campaign="spring",
        tags=["web"],
    )  # fmt: skip


def _counts(crm):
    with crm.transaction(readonly=True) as ctx:
        return (
            ctx.scalar(select(func.count(Contact.id))),
            ctx.scalar(select(func.count(Touchpoint.id))),
        )


def test_get_renders_an_embeddable_form_carrying_the_pages_tracking(http, demo_form):
    page = http.get("/forms/demo?utm_source=newsletter&gclid=abc-123&affiliate=blog42",
                    headers={"referer": "https://www.example.com/pricing"})  # fmt: skip
    assert page.status_code == 200
    html = page.text
    assert 'action="http://127.0.0.1:8000/forms/demo"' in html
    assert 'name="email"' in html and "Work email *" in html and "<textarea" in html
    assert '<option>11-50</option>' in html
    assert 'name="utm_source" value="newsletter"' in html and 'name="gclid" value="abc-123"' in html
    assert 'name="page_url" value="https://www.example.com/pricing"' in html
    assert 'name="website"' in html  # the honeypot
    assert "Send me product news by email." in html and "x-frame-options" not in page.headers


def test_urlencoded_submission_captures_the_lead_with_its_touchpoint_and_redirects(http, crm, demo_form, ledger):
    answer = http.post(
        "/forms/demo?utm_campaign=q1",
        data={"email": "Ada@Example.com", "first_name": "Ada", "company_size": "11-50", "message": "Hello",
              "utm_source": "newsletter", "utm_medium": "email", "gclid": "Cj0-abc_1", "affiliate": "blog42",
              "ad": "banner-1", "consent": "on", "page_url": "https://www.example.com/pricing"},
        headers={"origin": "https://www.example.com"}, follow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 303
    assert answer.headers["location"] == "http://127.0.0.1:8000/forms/demo/thanks"
    ada = crm.contacts.get("ada@example.com")
    assert (ada.first_name, ada.stage, ada.source) == ("Ada", "lead", "newsletter")
    assert "web" in crm.contacts.details(ada.id)["tags"]
    (touch,) = crm.touchpoints.list(ada.id)
    assert (touch.kind, touch.utm_source, touch.utm_medium, touch.utm_campaign) == ("form", "newsletter", "email", "q1")
    assert (touch.click_id, touch.click_id_kind) == ("Cj0-abc_1", "gclid")
    assert (touch.affiliate, touch.ad) == ("blog42", "banner-1")
    assert touch.campaign == "spring" and touch.url == "https://www.example.com/pricing"
    assert touch.details["form"] == "demo" and touch.details["fields"] == {"company_size": "11-50", "message": "Hello"}
    (grant,) = ledger.grants
    assert grant["contact_id"] == ada.id and grant["purposes"] == ["marketing"]
    assert grant["proof"]["source"] == "form:demo" and grant["proof"]["form_version"] == 1
    assert grant["proof"]["text"] == "Send me product news by email." and grant["proof"]["ip"] == "127.0.0.1"
    assert http.get(answer.headers["location"].removeprefix("http://127.0.0.1:8000")).status_code == 200


def test_json_submission_answers_201(http, crm, demo_form, ledger):
    answer = http.post("/forms/demo", json={"email": "bob@example.com"})
    assert answer.status_code == 201 and answer.json() == {"ok": True}
    assert crm.contacts.get("bob@example.com").stage == "lead"
    assert ledger.grants == []  # the box was not ticked


def test_invalid_input_is_422_per_field_and_nothing_is_written(http, crm, demo_form):
    answer = http.post("/forms/demo", json={"email": "not-an-email", "company_size": "huge",
                                            "gclid": "x" * 300, "first_name": ["a", "b"]})  # fmt: skip
    assert answer.status_code == 422
    assert set(answer.json()["errors"]) == {"email", "company_size", "gclid", "first_name"}
    page = http.post("/forms/demo", data={"email": "", "first_name": "<script>alert(1)</script>"},
                     headers={"accept": "text/html"})  # fmt: skip
    assert page.status_code == 422
    assert "is required" in page.text
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert _counts(crm) == (0, 0)


def test_script_tags_in_names_are_stored_as_text_and_escaped_on_pages(http, crm, demo_form):
    name = '<script>alert("x")</script>'
    assert http.post("/forms/demo", json={"email": "eve@example.com", "first_name": name}).status_code == 201
    assert crm.contacts.get("eve@example.com").first_name == name
    crm.forms.create("evil", title='<img src=x onerror="alert(1)">', fields=[{"name": "email", "type": "email"}],
                     thank_you_message="<b>thanks</b>")  # fmt: skip
    for path in ("/forms/evil", "/forms/evil/thanks"):
        html = http.get(path).text
        assert "<img src=x" not in html and "&lt;img src=x" in html
    assert "<b>thanks</b>" not in http.get("/forms/evil/thanks").text


def test_honeypot_is_answered_like_success_and_writes_nothing(http, crm, demo_form):
    answer = http.post("/forms/demo", data={"email": "bot@example.com", "website": "http://spam"},
                       follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303
    assert _counts(crm) == (0, 0)


def test_a_double_submit_within_the_window_is_one_submission(http, crm, demo_form, clock):
    for _ in range(2):
        assert http.post("/forms/demo", json={"email": "ada@example.com"}).status_code == 201
    assert _counts(crm) == (1, 1)
    clock.advance(timedelta(seconds=crm.settings.form_dedupe_seconds + 1))
    assert http.post("/forms/demo", json={"email": "ada@example.com"}).status_code == 201
    assert _counts(crm) == (1, 2)


def test_foreign_origins_are_refused(http, crm, demo_form):
    answer = http.post("/forms/demo", json={"email": "ada@example.com"}, headers={"origin": "https://evil.example"})
    assert answer.status_code == 403
    assert http.post("/forms/demo", data={"email": "ada@example.com"},
                     headers={"referer": "https://evil.example/page"}).status_code == 403  # fmt: skip
    allowed = http.post("/forms/demo", json={"email": "ada@example.com"},
                        headers={"origin": "https://www.example.com"})  # fmt: skip
    assert allowed.status_code == 201 and allowed.headers["access-control-allow-origin"] == "https://www.example.com"
    preflight = http.options("/forms/demo", headers={"origin": "https://www.example.com",
                                                     "access-control-request-method": "POST"})  # fmt: skip
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-methods"] == "POST"
    assert _counts(crm) == (1, 1)


def test_per_address_rate_limit(http, crm, demo_form):
    statuses = [http.post("/forms/demo", json={"email": f"u{i}@example.com"}).status_code for i in range(7)]
    assert statuses == [201] * 5 + [429] * 2
    assert _counts(crm) == (5, 5)


def test_wrong_content_types_and_broken_bodies(http, crm, demo_form):
    assert http.post("/forms/demo", content=b"email=a", headers={"content-type": "text/plain"}).status_code == 415
    broken = http.post("/forms/demo", content=b"{nope", headers={"content-type": "application/json"})
    assert broken.status_code == 400
    assert http.post("/forms/demo", json=["a"]).status_code == 422
    files = http.post("/forms/demo", files={"email": ("a.txt", b"x")})
    assert files.status_code == 422
    big = http.post("/forms/demo", content=b"email=" + b"a" * 2_000_000,
                    headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert big.status_code == 413
    assert _counts(crm) == (0, 0)


def test_unknown_form_is_404(http, crm):
    assert http.get("/forms/nope").status_code == 404
    assert http.post("/forms/nope", json={"email": "a@example.com"}).status_code == 404


def test_required_consent(http, crm, ledger):
    crm.forms.create("news", title="Newsletter", fields=[{"name": "email", "type": "email", "required": True}],
                     consent_text="Yes, send me the newsletter", consent_required=True,
                     consent_purposes=["marketing", "surveys"],
                     thank_you_url="https://www.example.com/thanks")  # fmt: skip
    refused = http.post("/forms/news", json={"email": "ada@example.com"})
    assert refused.status_code == 422 and set(refused.json()["errors"]) == {"consent"}
    ok = http.post("/forms/news", data={"email": "ada@example.com", "consent": "on"}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "https://www.example.com/thanks"
    assert ledger.grants[0]["purposes"] == ["marketing", "surveys"]


def test_a_consent_hook_that_fails_rolls_the_submission_back(crm_factory):
    class Broken:
        @hookimpl
        def crm_form_consent_given(self, contact_id, form_slug, purposes, proof, ctx):
            raise ValidationError({"consent": "ledger unavailable"})

    crm = crm_factory(plugins=[Broken()])
    crm.forms.create("f", title="F", fields=[{"name": "email", "type": "email"}], consent_text="OK?")
    with pytest.raises(ValidationError):
        crm.forms.submit("f", {"email": "ada@example.com", "consent": "on"})
    assert _counts(crm) == (0, 0)


def test_clicks_before_the_form_are_credited_to_the_new_contact(http, crm, demo_form):
    crm.links.create("https://www.example.com/", code="aff", affiliate="blog42")
    http.get("/r/aff", follow_redirects=False)  # the client keeps the click cookie
    assert http.post("/forms/demo", json={"email": "ada@example.com"}).status_code == 201
    ada = crm.contacts.get("ada@example.com")
    kinds = sorted(t.kind for t in crm.touchpoints.list(ada.id))
    assert kinds == ["affiliate_click", "form"]
    attribution = crm.affiliates.of_contact(ada.id)
    first, last = (crm.touchpoints.list(ada.id)[i] for i in (1, 0))
    assert attribution.first_touch_id is not None
    with crm.transaction(readonly=True) as ctx:
        assert ctx.session.get(Touchpoint, attribution.first_touch_id).kind == "affiliate_click"
    assert {first.kind, last.kind} == {"affiliate_click", "form"}


def test_form_definitions_are_checked(crm):
    with pytest.raises(ValidationError) as refused:
        crm.forms.create("Bad Slug", title="", fields=[{"name": "x", "type": "weird"}, {"name": "utm_source"}],
                         allowed_origins=["https://example.com/path"])  # fmt: skip
    assert {"slug", "title", "fields.0", "fields.1", "allowed_origins"} <= set(refused.value.errors)
    with pytest.raises(ValidationError) as no_email:
        crm.forms.create("f", title="F", fields=[{"name": "first_name"}])
    assert "email or phone" in no_email.value.errors["fields"]


def test_form_cli(cli, crm):
    created = cli("form", "create", "demo", "--title", "Book a demo", "--field", "email:email!", "--field",
                  "first_name", "--field", "size:select|1-10|11-50", "--consent-text", "News please",
                  "--origin", "https://www.example.com", "--format", "json")  # fmt: skip
    assert created.exit_code == 0, created.output
    assert '"url": "http://127.0.0.1:8000/forms/demo"' in created.output
    shown = cli("form", "show", "demo", "--format", "json")
    assert '"maps_to": "email"' in shown.output and "<iframe" in shown.output
    assert "demo" in cli("form", "list").output
    bad = cli("form", "create", "x", "--title", "X", "--field", "notes:textarea")
    assert bad.exit_code == 1 and "email or phone" in bad.output


def test_audit_has_no_invalid_link_noise_from_forms(crm, demo_form):
    crm.forms.submit("demo", {"email": "ada@example.com"})
    with crm.transaction(readonly=True) as ctx:
        assert ctx.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "link.invalid")) == 0


def test_concurrent_first_submissions_of_one_email_make_one_contact(crm_factory, clock):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from crmcore.testing.server import live_server

    crm = crm_factory(form_dedupe_seconds=0, form_rate_per_minute=100)
    crm.forms.create("f", title="F", fields=[{"name": "email", "type": "email", "required": True}])
    with live_server(crm.asgi_app()) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(lambda _: client.post("/forms/f", json={"email": "ada@example.com"}).status_code,
                                     range(6)))  # fmt: skip
    assert statuses == [201] * 6
    assert _counts(crm) == (1, 6)


def test_unmapped_answers_are_checked_by_type(crm):
    crm.forms.create("quote", title="Quote", fields=[
        {"name": "email", "type": "email", "required": True}, {"name": "colleague", "type": "email"},
        {"name": "start", "type": "date"}, {"name": "seats", "type": "number"},
    ])  # fmt: skip
    with pytest.raises(ValidationError) as refused:
        crm.forms.submit("quote", {"email": "ada@example.com", "colleague": "nope", "start": "soon", "seats": "many"})
    assert set(refused.value.errors) == {"colleague", "start", "seats"}
    crm.forms.submit("quote", {"email": "ada@example.com", "colleague": "bob@example.com", "start": "2026-02-01",
                               "seats": "12"})  # fmt: skip
    (touch,) = crm.touchpoints.list(crm.contacts.get("ada@example.com").id)
    assert touch.details["fields"] == {"colleague": "bob@example.com", "start": "2026-02-01", "seats": "12"}

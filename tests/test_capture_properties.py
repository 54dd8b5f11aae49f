"""Property tests: random bodies and query strings at the capture and redirect routes over real HTTP.

Whatever arrives, the answer is never a 500, a redirect only ever goes to a
link's own destination, and a refused submission leaves no row behind.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from crmcore.links import signed_redirect_url
from crmcore.models import AuditEntry, Contact, ContactAttribution, Touchpoint

pytestmark = pytest.mark.databases("sqlite", "postgresql", "mariadb")

PROPERTY_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
KEYS = ["email", "first_name", "company_size", "message", "consent", "website", "utm_source", "utm_campaign",
        "gclid", "fbclid", "msclkid", "affiliate", "ad", "referrer", "page_url", "subid", "junk"]  # fmt: skip
TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["ada@example.com", "bob@example.com", "<script>alert(1)</script>", "on", "", "11-50",
                     "x" * 300, "a\x00b", "😀@example.com", "ada@@example.com"]),
)
VALUE = st.one_of(TEXT, st.integers(), st.booleans(), st.none(), st.lists(TEXT, max_size=2),
                  st.dictionaries(TEXT, TEXT, max_size=2), st.floats(allow_nan=True))  # fmt: skip
BODY = st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), VALUE, max_size=8)


@pytest.fixture
def crm_settings():
    return {"form_rate_per_minute": 100_000, "form_dedupe_seconds": 0}


@pytest.fixture
def form(crm):
    return crm.forms.create(
        "demo", title="Demo", consent_text="News please", fields=[
            {"name": "email", "type": "email", "required": True}, {"name": "first_name"},
            {"name": "company_size", "type": "select", "choices": ["1-10", "11-50"]},
            {"name": "message", "type": "textarea", "max_length": 200},
        ],
    )  # fmt: skip


def _rows(crm):
    with crm.transaction(readonly=True) as ctx:
        models = (Contact.id, Touchpoint.id, ContactAttribution.contact_id)
        return tuple(ctx.scalar(select(func.count(m))) for m in models)


def _urlencoded(body):
    pairs = []
    for key, value in body.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append(f"{quote(str(key))}={quote(str(item))}")
    return "&".join(pairs).encode()


def _honeypot_filled(body, as_json):
    """Whether the honeypot arrives filled, as the body is sent (urlencoded: every value as its text)."""
    if "website" not in body:
        return False
    value = body["website"]
    if as_json:
        return bool(value)
    if isinstance(value, list):
        return bool(value) and str(value[0]) != ""
    return str(value) != ""


@PROPERTY_SETTINGS
@given(body=BODY, as_json=st.booleans(), query=st.dictionaries(st.sampled_from(KEYS), TEXT, max_size=3))
@example(body={"email": "ada@example.com", "first_name": "<script>x</script>", "consent": "on"}, as_json=False,
         query={"utm_source": "news"})
@example(body={"email": "ada@example.com", "gclid": "x" * 300}, as_json=True, query={})
@example(body={"email": "bot@example.com", "website": "spam"}, as_json=False, query={})
def test_random_form_bodies_never_500_and_never_leave_partial_rows(http, crm, form, body, as_json, query):
    before = _rows(crm)
    if as_json:
        content, content_type = json.dumps(body, allow_nan=True).encode(), "application/json"
    else:
        content, content_type = _urlencoded(body), "application/x-www-form-urlencoded"
    answer = http.post("/forms/demo", params=query, content=content,
                       headers={"content-type": content_type}, follow_redirects=False)  # fmt: skip
    assert answer.status_code in (201, 303, 400, 422), answer.text
    after = _rows(crm)
    if answer.status_code in (400, 422):
        assert after == before
    elif _honeypot_filled(body, as_json):
        assert after == before  # the honeypot: answered like success, nothing written
    else:
        assert after[1] == before[1] + 1  # one form touchpoint per accepted submission
        assert "<script>" not in answer.text


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=300), content_type=st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "text/plain", ""]))
def test_random_bytes_never_500(http, crm, form, raw, content_type):
    before = _rows(crm)
    answer = http.post("/forms/demo", content=raw, headers={"content-type": content_type})
    assert answer.status_code in (201, 303, 400, 415, 422), answer.text
    if answer.status_code >= 400:
        assert _rows(crm) == before


@PROPERTY_SETTINGS
@given(code=st.text(max_size=60), query=st.dictionaries(st.text(max_size=12), TEXT, max_size=4))
def test_random_short_codes_and_queries_only_redirect_to_the_links_destination(http, crm, code, query):
    if not crm.links.list():
        crm.links.create("https://shop.example.com/landing", code="known", ad="ad-1")
    before = _rows(crm)[1]
    for path_code in (code, "known"):
        answer = http.get("/r/" + quote(path_code, safe=""), params=query, follow_redirects=False)
        assert answer.status_code in (302, 307, 404, 405), answer.text
        if answer.status_code == 307:  # Starlette's trailing-slash redirect, to our own host
            assert answer.headers["location"].startswith(str(http.base_url).rstrip("/") + "/r")
            continue
        if answer.status_code == 302:
            assert answer.headers["location"] == "https://shop.example.com/landing"
            assert _rows(crm)[1] == before + 1
            before += 1
        else:
            assert _rows(crm)[1] == before


@PROPERTY_SETTINGS
@given(flip=st.integers(min_value=0, max_value=400), replacement=st.characters(codec="ascii"),
       junk=st.text(max_size=80))  # fmt: skip
def test_tampered_tokens_never_redirect(http, crm, flip, replacement, junk):
    contact = crm.contacts.list()[0] if crm.contacts.list() else crm.leads.capture(email="ada@example.com")
    token = signed_redirect_url(crm, "https://shop.example.com/", contact_id=contact.id).rsplit("/", 1)[1]
    index = flip % len(token)
    forged = token[:index] + replacement + token[index + 1:]
    with crm.transaction(readonly=True) as ctx:
        invalid_before = ctx.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "link.invalid"))
    for candidate in (forged, junk):
        answer = http.get("/r/s/" + quote(candidate, safe=""), follow_redirects=False)
        assert answer.status_code in (302, 307, 400, 404, 405), answer.text
        if answer.status_code == 307:  # Starlette's trailing-slash redirect, to our own host
            assert answer.headers["location"].startswith(str(http.base_url).rstrip("/") + "/r/s")
            continue
        if answer.status_code == 302:  # only the untouched token (or an equivalent encoding) redirects
            assert answer.headers["location"] == "https://shop.example.com/"
            assert crm.signer.loads("redirect", candidate)["c"] == contact.id
    with crm.transaction(readonly=True) as ctx:
        invalid_after = ctx.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "link.invalid"))
    assert invalid_after >= invalid_before

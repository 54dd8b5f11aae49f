"""Conversions, attribution, affiliates (commission hook, postback to a real local server), ad-spend import."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from crmcore import hookimpl
from crmcore.attribution import sign_conversion
from crmcore.errors import ValidationError
from crmcore.models import AdSpend, ConversionAttribution, Job, Touchpoint

SECRET = "shop-shared-secret-0123456789"


@pytest.fixture
def crm_settings():
    return {"conversion_secret": SECRET}


class Postbacks:
    """A real HTTP server on 127.0.0.1 that records postbacks; answers ``status``."""

    def __init__(self):
        self.paths: list[str] = []
        self.status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.paths.append(self.path)
                self.send_response(owner.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def postbacks():
    server = Postbacks()
    yield server
    server.close()


def _post(http, crm, payload, *, secret=SECRET, timestamp=None):
    body = json.dumps(payload).encode()
    stamp = int(crm.clock.now().timestamp()) if timestamp is None else timestamp
    return http.post("/conversions", content=body, headers={
        "content-type": "application/json", "x-crm-timestamp": str(stamp),
        "x-crm-signature": sign_conversion(secret, stamp, body),
    })  # fmt: skip


def _conversions(crm):
    with crm.transaction(readonly=True) as ctx:
        return list(ctx.session.scalars(select(ConversionAttribution)))


def test_signed_conversion_is_recorded_once_per_order_with_first_and_last_touch(http, crm, clock, hook_calls):
    ada = crm.leads.capture(email="ada@example.com", touch={"kind": "ad_click", "ad": "banner-1", "campaign": "q1"})
    clock.advance(days=2)
    crm.touchpoints.record(ada.id, kind="email_click", campaign="newsletter")
    clock.advance(hours=1)
    answer = _post(http, crm, {"order_id": "A-1001", "email": "ADA@example.com", "value": "99.90", "currency": "EUR"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["duplicate"] is False
    again = _post(http, crm, {"order_id": "A-1001", "email": "ada@example.com", "value": "99.90"})
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["conversion_id"] == answer.json()["conversion_id"]
    (row,) = _conversions(crm)
    with crm.transaction(readonly=True) as ctx:
        first = ctx.session.get(Touchpoint, row.first_touch_id)
        last = ctx.session.get(Touchpoint, row.last_touch_id)
    assert (first.kind, first.ad) == ("ad_click", "banner-1")
    assert (last.kind, last.campaign) == ("email_click", "newsletter")
    assert (row.value, row.currency, row.contact_id) == (Decimal("99.9000"), "EUR", ada.id)
    attribution = crm.affiliates.of_contact(ada.id)
    assert (attribution.first_touch_id, attribution.last_touch_id) == (first.id, last.id)
    (fired,) = hook_calls.of("crm_conversion_attributed")
    assert fired["attribution"].touchpoint_id == answer.json()["conversion_id"]


def test_a_buyer_not_yet_known_becomes_a_lead(http, crm):
    answer = _post(http, crm, {"order_id": 7, "email": "new@example.com", "value": 10, "first_name": "Neu"})
    assert answer.status_code == 201
    buyer = crm.contacts.get("new@example.com")
    assert buyer.first_name == "Neu"
    assert [t.kind for t in crm.touchpoints.list(buyer.id)] == ["conversion"]


def test_bad_signatures_stale_timestamps_and_bad_bodies_write_nothing(http, crm, clock):
    payload = {"order_id": "A-1", "email": "ada@example.com"}
    assert _post(http, crm, payload, secret="wrong-secret-000000").status_code == 403
    assert _post(http, crm, payload, timestamp=int(clock.now().timestamp()) - 3600).status_code == 403
    assert http.post("/conversions", json=payload).status_code == 403
    invalid = _post(http, crm, {"order_id": "", "value": "-5", "coupon": "x"})
    assert invalid.status_code == 422
    assert set(invalid.json()["errors"]) == {"order_id", "email", "coupon"}
    bad_value = _post(http, crm, {"order_id": "A-2", "email": "ada@example.com", "value": "lots"})
    assert bad_value.status_code == 422 and "value" in bad_value.json()["errors"]
    assert crm.contacts.list() == [] and _conversions(crm) == []


def test_conversions_are_off_without_a_secret(crm_factory):
    crm = crm_factory(conversion_secret="")
    from crmcore.errors import NotFound

    with pytest.raises(NotFound):
        crm.conversions.verify("1", "sha256=00", b"{}")


def test_cli_conversion_is_attributed_too(cli, crm):
    ada = crm.leads.capture(email="ada@example.com", touch={"kind": "link_click", "campaign": "spring"})
    result = cli("touch", "record", "ada@example.com", "--kind", "conversion", "--value", "49.90",
                 "--currency", "EUR")  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = _conversions(crm)
    assert row.contact_id == ada.id and row.value == Decimal("49.9000") and row.first_touch_id is not None


class DoubleCommission:
    @hookimpl
    def crm_affiliate_commission(self, affiliate, conversion, ctx):
        return Decimal("2") * (conversion.value or 0)


def test_affiliate_commission_and_postback_through_the_outbox(http, crm, cli, postbacks, run_due_jobs, clock):
    added = cli("affiliate", "add", "blog-42", "--name", "Gadget Blog", "--percent", "10", "--flat", "1.50",
                "--postback-url", postbacks.url + "/pb?sub={subid}&amount={commission}&order={order_id}")  # fmt: skip
    assert added.exit_code == 0, added.output
    crm.links.create("https://shop.example.com/", code="g42", affiliate="blog-42")
    assert http.get("/r/g42?subid=abc", follow_redirects=False).status_code == 302
    crm.forms.create("signup", title="Sign up", fields=[{"name": "email", "type": "email", "required": True}])
    assert http.post("/forms/signup", json={"email": "ada@example.com"}).status_code == 201
    clock.advance(days=3)
    assert _post(http, crm, {"order_id": "A-9", "email": "ada@example.com", "value": "200"}).status_code == 201
    (row,) = _conversions(crm)
    assert row.commission == Decimal("21.5000")  # 10 % of 200 + 1.50
    # the affiliate click is the first touch (claimed from the cookie), the form the last
    with crm.transaction(readonly=True) as ctx:
        assert ctx.session.get(Touchpoint, row.first_touch_id).kind == "affiliate_click"

    postbacks.status = 500
    assert run_due_jobs() >= 1
    assert len(postbacks.paths) == 1  # tried, failed: retried later
    postbacks.status = 200
    clock.advance(minutes=5)
    run_due_jobs()
    clock.advance(minutes=5)
    run_due_jobs()
    assert postbacks.paths[-1] == "/pb?sub=abc&amount=21.50&order=A-9"
    assert len(postbacks.paths) == 2  # delivered once it succeeded, never again
    listed = cli("affiliate", "list", "--format", "json")
    assert '"conversions": 1' in listed.output and '"commission": "21.50"' in listed.output


def test_the_affiliate_window_and_the_commission_hook(crm_factory, clock):
    crm = crm_factory(plugins=[DoubleCommission()])
    crm.affiliates.add("blog-42", name="Gadget Blog", commission_percent="10")
    ada = crm.leads.capture(email="ada@example.com", touch={"kind": "affiliate_click", "affiliate": "blog-42"})
    crm.touchpoints.record(ada.id, kind="conversion", value="30", external_id="o-1")
    clock.advance(days=crm.settings.affiliate_window_days + 1)
    crm.touchpoints.record(ada.id, kind="conversion", value="30", external_id="o-2")
    rows = sorted(_conversions(crm), key=lambda r: r.occurred_at)
    assert rows[0].affiliate_id is not None and rows[0].commission == Decimal("60.0000")  # the plugin's rule
    assert rows[1].affiliate_id is None and rows[1].commission is None  # outside the window
    with crm.transaction(readonly=True) as ctx:
        assert ctx.scalar(select(func.count(Job.id)).where(Job.handler == "core.affiliate_postback")) == 0


def test_affiliate_definitions_are_checked(crm):
    with pytest.raises(ValidationError) as refused:
        crm.affiliates.add("", name="", commission_percent="ten", postback_url="file:///etc/passwd")
    assert set(refused.value.errors) == {"code", "name", "commission_percent", "postback_url"}


GOOGLE = """Campaign performance report
"January 1, 2026 - January 2, 2026"
Day,Campaign,Ad,Impr.,Clicks,Cost,Currency code
2026-01-01,spring,banner-1,"1,200",34,12.50,EUR
2026-01-02,spring,banner-1,900,20,9.10,EUR
Total,,,"2,100",54,21.60,
"""


def test_ad_spend_import_is_repeatable_and_all_or_nothing(cli, crm, tmp_path):
    path = tmp_path / "google.csv"
    path.write_text(GOOGLE, encoding="utf-8")
    first = cli("touch", "import", str(path), "--source", "google", "--format", "json")
    assert first.exit_code == 0, first.output
    assert '"created": 2' in first.output
    again = cli("touch", "import", str(path), "--source", "google", "--format", "json")
    assert '"updated": 2' in again.output and '"created": 0' in again.output
    with crm.transaction(readonly=True) as ctx:
        rows = list(ctx.session.scalars(select(AdSpend).order_by(AdSpend.day)))
    assert [(r.impressions, r.platform_clicks, r.spend, r.currency) for r in rows] == [
        (1200, 34, Decimal("12.5000"), "EUR"), (900, 20, Decimal("9.1000"), "EUR")]

    broken = tmp_path / "broken.csv"
    broken.write_text("Day,Campaign,Impressions,Clicks,Cost\n2026-01-03,spring,10,1,1.00\n"
                      "yesterday,spring,10,1,1\n2026-01-04,spring,many,1,1\n", encoding="utf-8")  # fmt: skip
    refused = cli("touch", "import", str(broken), "--source", "google")
    assert refused.exit_code == 1
    assert "row 3" in refused.output and "row 4" in refused.output
    with crm.transaction(readonly=True) as ctx:
        assert ctx.scalar(select(func.count(AdSpend.id))) == 2  # the good first row was not written either
    assert cli("touch", "import", str(tmp_path / "google.csv"), "--source", "").exit_code == 1


def test_meta_export_headers(crm):
    from crmcore.adimport import import_ad_spend

    text = "Reporting starts,Campaign name,Ad name,Impressions,Link clicks,Amount spent (EUR)\n" \
           "2026-01-01,spring,video-1,5000,80,40.00\n"  # fmt: skip
    result = import_ad_spend(crm, text, source="meta", currency="EUR")
    assert (result.rows, result.created) == (1, 1)

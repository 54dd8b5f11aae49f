"""The staff console over real HTTP: sign-in, pages, actions, and what each user may reach."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from crmcore.console import console_app
from crmcore.models import Interaction
from crmcore.settings import DEV_SECRET
from crmcore.testing.server import live_server

from .console_support import PASSWORD, SETTINGS, client_for, csrf_of, seed, sign_in


@pytest.fixture
def crm_plugins():
    return ["ticketing"]


@pytest.fixture
def crm_settings():
    return dict(SETTINGS)


@pytest.fixture
def site(crm):
    from crmcore_ticketing import ticketing

    data = seed(crm)
    data["ticket"] = ticketing(crm).tickets.open(subject="Printer jams", body="It jams on page 2.",
                                                 requester=data["rita_lead"].id)  # fmt: skip
    with live_server(crm.asgi_app()) as base_url:
        data["url"] = base_url
        yield data


def interactions(crm):
    with crm.transaction() as ctx:
        return ctx.session.scalar(select(func.count(Interaction.id)))


def test_sign_in_my_day_contact_and_sign_out(crm, site):
    with client_for(site["url"]) as client:
        assert client.get("/console/").headers["location"] == "/console/login?next=/console/"
        response = sign_in(client, "rita@example.com", next_path="/console/pipeline")
        assert response.status_code == 303 and response.headers["location"] == "/console/pipeline"
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # console_secure_cookies=false in these tests
        day = client.get("/console/")
        assert day.status_code == 200 and "Rita Rep" in day.text and "My day" in day.text
        assert day.headers["content-security-policy"].startswith("default-src 'self'")
        contact = client.get(f"/console/contacts/{site['rita_lead'].id}")
        assert contact.status_code == 200
        assert "Leila Ahmadi" in contact.text and "First call" in contact.text and "Score" in contact.text
        assert client.get("/console/static/htmx.min.js").status_code == 200
        logout = client.post("/console/logout", data={"csrf": csrf_of(day.text)})
        assert logout.status_code == 303
        assert client.get("/console/").status_code == 303


def test_cookies_are_secure_outside_development(crm_factory):
    crm = crm_factory(console_secure_cookies="auto")  # the "test" environment is not development
    with live_server(crm.asgi_app()) as url, httpx.Client(base_url=url) as client:
        cookie = client.get("/console/login").headers["set-cookie"]
        assert cookie.startswith("crm_console_login=") and "Secure" in cookie and "HttpOnly" in cookie


def test_wrong_password_and_the_login_rate_limit(crm, site):
    with client_for(site["url"]) as client:
        for _ in range(5):
            response = sign_in(client, "rita@example.com", "wrong password!!")
            assert response.status_code == 401 and "Wrong email or password" in response.text
            assert "crm_console=" not in response.headers.get("set-cookie", "")
        response = sign_in(client, "rita@example.com")  # right password, but too many tries
        assert response.status_code == 429 and "Too many" in response.text


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(crm, site):
    lead = site["rita_lead"].id
    before = interactions(crm)
    with client_for(site["url"], "rita@example.com") as client:
        page = client.get(f"/console/contacts/{lead}")
        for data in ({}, {"csrf": "forged"}, {"csrf": csrf_of(page.text) + "x"}):
            form = {**data, "kind": "note", "body": "hi"}
            response = client.post(f"/console/contacts/{lead}/interactions", data=form)
            assert response.status_code == 403
        assert interactions(crm) == before
        ok = client.post(f"/console/contacts/{lead}/interactions",
                         data={"csrf": csrf_of(page.text), "kind": "note", "body": "hi"})  # fmt: skip
        assert ok.status_code == 303 and interactions(crm) == before + 1
    with client_for(site["url"]) as client:  # the sign-in form has its own token
        client.get("/console/login")
        response = client.post("/console/login", data={"email": "rita@example.com", "password": PASSWORD})
        assert response.status_code == 403


def test_forged_expired_and_foreign_cookies_are_refused(crm, crm_factory, site, clock):
    with client_for(site["url"], "rita@example.com") as client:
        token = client.cookies["crm_console"]
    for value in ("garbage", token[:-2] + ("AA" if not token.endswith("AA") else "BB")):
        with client_for(site["url"]) as client:
            client.cookies.set("crm_console", value, path="/console")
            response = client.get("/console/")
            assert response.status_code == 303 and "/console/login" in response.headers["location"]
    other = crm_factory(secret_key="another-secret-key-of-another-crm")
    user = crm.users.get("rita@example.com")
    from crmcore.console.auth import issue_session

    foreign, _ = issue_session(other, user)
    with client_for(site["url"]) as client:
        client.cookies.set("crm_console", foreign, path="/console")
        assert client.get("/console/").status_code == 303
    with client_for(site["url"]) as client:
        client.cookies.set("crm_console", token, path="/console")
        assert client.get("/console/").status_code == 200
        clock.advance(timedelta(hours=12, minutes=1))
        assert client.get("/console/").status_code == 303


def test_a_user_disabled_mid_session_loses_access(crm, site):
    with client_for(site["url"], "rita@example.com") as client:
        assert client.get("/console/").status_code == 200
        crm.users.disable("rita@example.com")
        response = client.get("/console/")
        assert response.status_code == 303 and "/console/login" in response.headers["location"]
        crm.users.enable("rita@example.com")
        assert client.get("/console/").status_code == 303  # the old session stays dead
    with client_for(site["url"], "rita@example.com") as client:
        assert client.get("/console/").status_code == 200


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/x", "/\\evil.example", "\\\\evil.example", "javascript:alert(1)",
    "/elsewhere", "http://127.0.0.1/console/", "/console\r\nSet-Cookie: x=1",
])
def test_next_never_leaves_the_console(crm, site, target):
    with client_for(site["url"]) as client:
        response = sign_in(client, "rita@example.com", next_path=target)
        assert response.status_code == 303 and response.headers["location"] == "/console/"
        page = client.get("/console/login", params={"next": target})
        assert 'name="next" value="/console/"' in page.text


def test_another_reps_records_are_not_found(crm, site):
    with client_for(site["url"], "rita@example.com") as client:
        page = client.get("/console/")
        csrf = csrf_of(page.text)
        assert client.get(f"/console/contacts/{site['wes_lead'].id}").status_code == 404
        assert client.get(f"/console/contacts/{site['wes_lead'].id}/timeline").status_code == 404
        assert client.get("/console/contacts/999999").status_code == 404
        response = client.post(f"/console/opportunities/{site['other_deal'].id}/move",
                               data={"csrf": csrf, "stage": "proposal"})  # fmt: skip
        assert response.status_code == 404
        response = client.post(f"/console/contacts/{site['wes_lead'].id}/interactions",
                               data={"csrf": csrf, "kind": "note", "body": "peek"})  # fmt: skip
        assert response.status_code == 404
        found = client.get("/console/search", params={"q": "order"})
        assert "Leila&#39;s order" in found.text and "Omar" not in found.text
        assert "Omar" not in client.get("/console/pipeline").text
    with client_for(site["url"], "wes@example.com") as client:
        assert client.get(f"/console/contacts/{site['rita_lead'].id}").status_code == 404


def test_the_actions_of_the_contact_page_and_the_board(crm, site):
    lead = site["rita_lead"].id
    with client_for(site["url"], "mia@example.com") as client:  # a manager of east: may merge
        csrf = csrf_of(client.get(f"/console/contacts/{lead}").text)
        post = lambda path, **data: client.post(f"/console/contacts/{lead}/{path}", data={"csrf": csrf, **data})  # noqa: E731
        assert post("interactions", kind="call", subject="Pricing call", minutes="12").status_code == 303
        assert post("interactions", kind="note", body="").status_code == 422
        assert post("qualify", reason="Asked for a quote").status_code == 303
        assert crm.contacts.get(lead).stage == "prospect"
        dup = crm.contacts.add(email="leila.dup@example.org", first_name="Leila", owner=site["users"]["rita"].id)
        assert post("merge", other=str(dup.id)).status_code == 303
        assert crm.contacts.get(dup.id).merged_into_id == lead
        assert post("opportunities", name="Second order", amount="abc").status_code == 422
        assert post("opportunities", name="Second order", amount="300").status_code == 303
        page = client.get(f"/console/contacts/{lead}")
        assert "Pricing call" in page.text and "Second order" in page.text and "prospect" in page.text
        deal = site["deal"].id
        board = client.post(f"/console/opportunities/{deal}/move", data={"csrf": csrf, "stage": "proposal"},
                            headers={"HX-Request": "true"})  # fmt: skip
        assert board.status_code == 200 and board.text.lstrip().startswith('<div class="board"')
        column = re.search(r'data-stage="proposal">(.*?)</section>', board.text, re.S).group(1)
        assert "Leila&#39;s order" in column
        lost = client.post(f"/console/opportunities/{deal}/move", data={"csrf": csrf, "stage": "lost"})
        assert lost.status_code == 422 and "reason" in lost.text
        assert post("convert", reason="Signed offline").status_code == 303
        assert crm.contacts.get(lead).stage == "customer"


def test_the_ticket_queue_and_composer(crm, site, smtp_server):
    from crmcore_ticketing import ticketing

    number = site["ticket"].number
    with client_for(site["url"], "alex@example.com") as client:
        queue = client.get("/console/tickets")
        assert queue.status_code == 200 and number in queue.text and "badge" in queue.text
        page = client.get(f"/console/tickets/{number}")
        assert "It jams on page 2." in page.text
        csrf = csrf_of(page.text)
        assert client.post(f"/console/tickets/{number}/answer",
                           data={"csrf": csrf, "body": "Try the rear tray.", "status": "pending"}).status_code == 303
        assert client.post(f"/console/tickets/{number}/answer",
                           data={"csrf": csrf, "body": "Customer sounded upset", "kind": "note"}).status_code == 303
        assert client.post(f"/console/tickets/{number}/answer", data={"csrf": csrf, "body": " "}).status_code == 422
        found = client.get("/console/search", params={"q": number.lower()})
        assert f"tickets/{number}" in found.text
    messages = ticketing(crm).tickets.messages(number)
    assert [(m.body, m.public) for m in messages[1:]] == [("Try the rear tray.", True),
                                                           ("Customer sounded upset", False)]
    assert ticketing(crm).tickets.get(number).status == "pending"
    with client_for(site["url"], "rita@example.com") as client:  # reps do not work tickets
        assert client.get("/console/tickets").status_code == 403
        panel = client.get(f"/console/contacts/{site['rita_lead'].id}")
        assert number not in panel.text


XSS = "<script>alert('x')</script><img src=x onerror=alert(1)>"


def test_html_typed_in_every_field_is_escaped_everywhere(crm, site):
    from crmcore_ticketing import ticketing

    rita = site["users"]["rita"]
    evil = crm.contacts.add(first_name=XSS, last_name=XSS, title=XSS, city=XSS, source=XSS, tags=[XSS[:100]],
                            organization=XSS, phone="+98 912 000 1111", owner=rita.id)  # fmt: skip
    crm.interactions.log(evil.id, kind="call", subject=XSS, body=XSS, actor=rita.id)
    crm.sales.create_opportunity(evil.id, name=XSS, owner=rita.id)
    crm.sales.add_activity(kind="call", subject=XSS, contact=evil.id, owner=rita.id, due_at=crm.clock.now())
    ticket = ticketing(crm).tickets.open(subject=XSS, body=XSS, requester=evil.id)
    ticketing(crm).tickets.note(ticket.number, XSS, actor="alex@example.com")
    pages = {
        "rita@example.com": ["/console/", f"/console/contacts/{evil.id}", f"/console/contacts/{evil.id}/timeline",
                             "/console/pipeline", "/console/search?q=script", "/console/search?q=alert"],
        "alex@example.com": ["/console/tickets", f"/console/tickets/{ticket.number}",
                             f"/console/contacts/{evil.id}", "/console/search?q=script"],
    }  # fmt: skip
    for email, paths in pages.items():
        with client_for(site["url"], email) as client:
            for path in paths:
                html = client.get(path).text
                assert "<script>alert" not in html and "<img src=x" not in html, path
                assert "&lt;script&gt;" in html, path
        with client_for(site["url"]) as client:
            html = client.get("/console/login", params={"next": XSS}).text
            assert "<script>alert" not in html


def test_right_to_left_persian_pages_with_local_numbers_and_dates(crm, site):
    with client_for(site["url"], "rita@example.com") as client:
        client.headers["accept-language"] = "fa-IR,fa;q=0.9,en;q=0.5"
        page = client.get(f"/console/contacts/{site['rita_lead'].id}")
        assert '<html lang="fa" dir="rtl">' in page.text
        assert "روز من" in page.text and "سابقه" in page.text  # "My day", "Timeline"
        board = client.get("/console/pipeline")
        from babel.numbers import format_currency

        assert format_currency(1250.5, "USD", locale="fa") in board.text
        assert "ارزیابی اولیه" in board.text and "Qualification" not in board.text  # the default stages' names
        switched = client.get("/console/lang/en", params={"next": "/console/pipeline"})
        assert switched.status_code == 303 and switched.headers["location"] == "/console/pipeline"
        assert '<html lang="en" dir="ltr">' in client.get("/console/pipeline").text
        assert "$1,250.50" in client.get("/console/pipeline").text


def test_the_timeline_speaks_persian(crm, site):
    """Every kind of core timeline item reads in Persian (kinds, stage moves, reasons, amounts), as do score reasons."""
    lead = crm.contacts.add(email="sara@example.org", first_name="سارا", owner=site["users"]["rita"].id)
    crm.touchpoints.record(lead.id, kind="visit", source="google", campaign="spring")
    crm.touchpoints.record(lead.id, kind="email_open")
    crm.interactions.log(lead.id, kind="note", body="only a body", actor="rita@example.com")
    crm.interactions.log(lead.id, kind="call", subject="تماس درباره قیمت", actor="rita@example.com")
    crm.leads.qualify(lead.id, reason="بودجه دارد")
    crm.products.add("PRO", "CRM Pro licence", unit_price="120.00", currency="USD")
    crm.customers.record_purchase(lead.id, sku="PRO")
    crm.customers.add_feedback(lead.id, source="phone", rating=9)
    crm.customers.add_feedback(lead.id, source="phone", comment="عالی")
    with client_for(site["url"], "rita@example.com") as client:
        client.cookies.set("crm_lang", "fa", path="/console")
        html = client.get(f"/console/contacts/{lead.id}").text
    timeline = re.search(r'<ol class="timeline" id="timeline">(.*?)</ol>', html, re.S).group(1)
    items = [re.sub(r"<[^>]+>", "", item).strip() for item in re.findall(r"<li>(.*?)</li>", timeline, re.S)]
    assert len(items) == 10, items
    from babel.numbers import format_currency

    money = format_currency(120, "USD", locale="fa")
    for text in ("مرحله سرنخ شد (ایجاد)", "مرحله از سرنخ به مشتری بالقوه (بودجه دارد)",
                 "مرحله از مشتری بالقوه به مشتری (اولین خرید)", "بازدید منبع: google، کارزار: spring",
                 "یادداشت", "تماس تماس درباره قیمت", f"خرید خرید به مبلغ {money}",
                 "بازخورد امتیاز 9 از راه تلفن", "بازخورد نظر از راه تلفن"):  # fmt: skip
        assert any(item.endswith(text) for item in items), (text, items)
    assert any(item.endswith("باز کردن ایمیل") for item in items), items  # the kind alone: nothing else to say
    leftovers = [item for item in items if re.search(r"[A-Za-z]", item.replace("google", "").replace("spring", ""))]
    assert leftovers == []  # no English word: only the data as it was recorded
    assert "بازدید کرد (1 بار)" in html and "ایمیلی را باز کرد (1 بار)" in html  # score reasons, "visited (1x)"
    assert "(قواعد پایه)" in html and "(core)" not in html  # the score's source: the core's rules
    with client_for(site["url"], "rita@example.com") as client:  # the same items in English, as before
        english = client.get(f"/console/contacts/{lead.id}").text
    for text in ("became lead (created)", "lead -&gt; prospect (بودجه دارد)", "source=google, campaign=spring",
                 "bought for $120.00", "rated 9 via phone", "commented via phone", ">interaction:note</span> </li>"):
        assert text in english, text


def test_stage_move_reasons_stored_with_values_read_in_persian():
    """The core stores some reasons with values in them (auto-qualify, dormancy): recognised and translated."""
    from crmcore.console.i18n import LOCALE_DIR, compile_po, describe, term
    from crmcore.i18n import NO_ACTIVITY, SCORE_QUALIFIED

    persian = compile_po(LOCALE_DIR / "fa" / "LC_MESSAGES" / "console.po", "fa").gettext
    qualified = SCORE_QUALIFIED % {"score": 55, "rule": 50}
    assert qualified == "score 55 >= 50"  # what the core stores, as before
    assert term(qualified, persian) == "امتیاز 55 ≥ 50"
    assert term(NO_ACTIVITY % {"days": 90}, persian) == "بدون فعالیت در 90 روز"
    assert term("purchased again", persian) == "خرید دوباره"
    assert term("score 55 >= 50 <b>", persian) == "score 55 >= 50 <b>"  # not the message: shown as typed
    assert term(qualified, str) == qualified  # English: as stored
    item = {"message": "%(from)s -> %(to)s (%(reason)s)", "terms": {"from": "lead", "to": "prospect",
                                                                     "reason": qualified}}  # fmt: skip
    assert describe(item, persian, None) == "از سرنخ به مشتری بالقوه (امتیاز 55 ≥ 50)"  # type: ignore[arg-type]


def test_error_pages_speak_persian(crm, site):
    """A record out of reach, a form left empty, a page that does not exist: told in the page's language."""
    lead, theirs = site["rita_lead"].id, site["wes_lead"].id
    with client_for(site["url"], "rita@example.com") as client:
        client.cookies.set("crm_lang", "fa", path="/console")
        missing = client.get(f"/console/contacts/{theirs}")
        assert missing.status_code == 404 and f"مخاطب {theirs} پیدا نشد" in missing.text
        assert "not found" not in missing.text
        csrf = csrf_of(client.get(f"/console/contacts/{lead}").text)
        empty = client.post(f"/console/contacts/{lead}/qualify", data={"csrf": csrf, "reason": " "})
        assert empty.status_code == 422 and "reason: دلیل لازم است" in empty.text and "is required" not in empty.text
        assert "این صفحه وجود ندارد." in client.get("/console/no-such-page").text
        forged = client.post(f"/console/contacts/{lead}/qualify", data={"csrf": "forged", "reason": "x"})
        assert forged.status_code == 403 and "فرم منقضی شده" in forged.text
    with client_for(site["url"], "rita@example.com") as client:  # in English, as before
        assert f"contact {theirs} not found" in client.get(f"/console/contacts/{theirs}").text


def test_the_actions_refusals_speak_persian(crm, site):
    """What the services refuse on a console action is told in the page's language, its values kept."""
    from crmcore_ticketing import ticketing

    lead, deal = site["rita_lead"].id, site["deal"]
    crm.leads.qualify(lead, reason="has budget")
    with client_for(site["url"], "ada@example.com") as client:
        client.cookies.set("crm_lang", "fa", path="/console")
        csrf = csrf_of(client.get(f"/console/contacts/{lead}").text)

        def refused(path: str, **form: str) -> str:
            response = client.post(f"/console/{path}", data={"csrf": csrf, **form})
            assert 400 <= response.status_code < 500, (path, response.status_code)
            return html.unescape(response.text)

        again = refused(f"contacts/{lead}/qualify", reason="twice")  # a prospect now
        assert "فقط سرنخ را می‌توان واجد شرایط کرد؛ این مخاطب «مشتری بالقوه» است" in again
        assert "only a lead" not in again and "prospect" not in again
        itself = refused(f"contacts/{lead}/merge", other=str(lead))
        assert "نمی‌توان مخاطبی را با خودش ادغام کرد" in itself and "itself" not in itself
        crm.customers.convert(lead, reason="signed")
        twice = refused(f"contacts/{lead}/convert", reason="again")
        assert f"مخاطب {lead} هم‌اکنون مشتری است" in twice and "already" not in twice
        nowhere = refused(f"opportunities/{deal.id}/move", stage="no-such-stage")
        assert "مرحله‌ای به نام 'no-such-stage' نیست؛ مرحله‌ها: qualification" in nowhere
        lost = refused(f"opportunities/{deal.id}/move", stage="lost")
        assert "دلیل از دست رفتن معامله را بنویسید" in lost and "give the reason" not in lost
        crm.sales.move(deal.id, "won")
        closed = refused(f"opportunities/{deal.id}/move", stage="lost", reason="late")
        assert f"وضعیت فرصت فروش {deal.id} پیش‌تر «برنده» است" in closed and "already" not in closed
        number = site["ticket"].number
        empty = refused(f"tickets/{number}/answer", body=" ")
        assert "پاسخ یا یادداشتی بنویسید" in empty and "write a reply" not in empty
        ticketing(crm).tickets.set_status(number, "closed")
        closed_ticket = refused(f"tickets/{number}/answer", body="Any news?")
        assert f"تیکت {number} بسته شده است؛ به‌جای آن تیکت پیگیری باز کنید" in closed_ticket
    with client_for(site["url"], "ada@example.com") as client:  # English: the services' own texts, as before
        csrf = csrf_of(client.get(f"/console/contacts/{lead}").text)
        response = client.post(f"/console/opportunities/{deal.id}/move", data={"csrf": csrf, "stage": "lost"})
        assert f"opportunity {deal.id} is already won" in response.text


def test_every_template_text_has_a_persian_translation():
    from pathlib import Path

    from crmcore.console.i18n import LOCALE_DIR, compile_po, messages_in

    root = Path(__file__).resolve().parent.parent
    core = compile_po(LOCALE_DIR / "fa" / "LC_MESSAGES" / "console.po", "fa")
    marked = messages_in(sorted((root / "crmcore").rglob("*.py")))  # texts Python composes (timeline items)
    assert "became %(to)s" in marked and "touch:visit" in marked
    for message in messages_in([root / "templates" / "console"]) | marked:
        assert core.gettext(message) != message or message == "CRM", message
    for plugin in ("ticketing", "surveys", "accounting_bridge", "email_marketing"):
        plugin_dir = root / "plugins" / plugin / f"crmcore_{plugin}"
        catalog = compile_po(plugin_dir / "locale" / "fa" / "LC_MESSAGES" / "console.po", "fa")
        messages = messages_in([plugin_dir / "templates" / plugin / "console", *sorted(plugin_dir.rglob("*.py"))])
        assert messages, plugin
        for message in messages:
            assert catalog.gettext(message) != message, (plugin, message)


def test_the_console_can_be_left_out_and_refuses_the_default_secret(crm_factory):
    crm = crm_factory(console_enabled=False, secret_key=SETTINGS["secret_key"])
    with live_server(crm.asgi_app()) as url:
        assert httpx.get(f"{url}/console/login").status_code == 404
    crm = crm_factory(secret_key=DEV_SECRET)  # environment "test" with the development secret
    with live_server(crm.asgi_app()) as url:
        response = httpx.get(f"{url}/console/login")
        assert response.status_code == 503 and "secret key" in response.text
    assert crm.users.list() == []  # and no account was made


def test_behind_a_hosts_authentication_accounts_map_to_users(crm_factory):
    from starlette.applications import Starlette
    from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.routing import Mount

    from crmcore import hookimpl

    class HostAccounts:
        @hookimpl
        def crm_host_account_user(self, account, ctx):
            return {"host-ada": "ada@example.com"}.get(account.username)

    class HeaderAuth(AuthenticationBackend):
        async def authenticate(self, conn):
            name = conn.headers.get("x-host-user")
            return (AuthCredentials(["authenticated"]), SimpleUser(name)) if name else None

    crm = crm_factory(plugins=[HostAccounts()], **SETTINGS)
    crm.users.add("ada@example.com", "Ada Admin", role="admin")  # no password: the host signs her in
    host = Starlette(routes=[Mount("/crm", app=console_app(crm))],
                     middleware=[Middleware(AuthenticationMiddleware, backend=HeaderAuth())])  # fmt: skip
    with live_server(host) as url, httpx.Client(base_url=url) as client:
        assert client.get("/crm/", headers={"x-host-user": "stranger"}).status_code == 303
        page = client.get("/crm/", headers={"x-host-user": "host-ada"})
        assert page.status_code == 200 and "Ada Admin" in page.text and 'href="/crm/pipeline"' in page.text


def _console_routes(crm):
    from starlette.routing import Mount, Route

    app = crm.asgi_app()
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/console")
    return [r for r in mount.app.routes if isinstance(r, Route)]


def test_every_route_as_every_role_matches_the_roles_grants(crm, site):
    """Walk each console route as each built-in role: reachable exactly when the role grants it."""
    params = {"contact_id": site["rita_lead"].id, "number": site["ticket"].number,
              "opportunity_id": 999999, "activity_id": 999999}  # fmt: skip
    routes = _console_routes(crm)
    guarded = [r for r in routes if hasattr(r.endpoint, "permission")]
    public = {r.path for r in routes} - {r.path for r in guarded}
    assert public == {"/login", "/lang/{code}"}
    walked = 0
    for email in ("rita@example.com", "mia@example.com", "alex@example.com", "mark@example.com", "ada@example.com"):
        granted = set(crm.users.permissions_of(email))
        with client_for(site["url"], email) as client:
            csrf = csrf_of(client.get("/console/").text)
            for route in guarded:
                if route.path == "/logout":
                    continue
                path = "/console" + re.sub(r"\{(\w+)(:\w+)?\}", lambda m: str(params[m.group(1)]), route.path)
                allowed = route.endpoint.permission is None or route.endpoint.permission in granted
                for method in sorted(route.methods - {"HEAD"}):
                    if method == "GET":
                        status = client.get(path).status_code
                        assert status == (200 if allowed else 403), (email, method, path, status)
                    else:
                        status = client.post(path, data={"csrf": csrf}).status_code
                        assert (status != 403) if allowed else (status == 403), (email, method, path, status)
                    walked += 1
            menu = client.get("/console/").text
            assert ('href="/console/tickets"' in menu) == ("ticketing.view" in granted), email
            assert ('href="/console/reports"' in menu) == ("reports.view" in granted), email
    assert walked >= 5 * 15


def test_the_contact_page_shows_consent_from_the_ledger(crm, site):
    lead = site["rita_lead"].id
    crm.consent.grant(lead, "marketing", "email", source="form:newsletter")
    with client_for(site["url"], "rita@example.com") as client:
        html = client.get(f"/console/contacts/{lead}").text
    consent = re.search(r'<table class="consent">(.*?)</table>', html, re.S).group(1)
    rows = {m.group(1): m.group(2) for m in re.finditer(r"<tr><th>(\w+)</th>(.*?)</tr>", consent, re.S)}
    assert rows["marketing"].count("badge ok") == 1 and "badge ok" not in rows["surveys"]


def test_the_timeline_pages_through_items_sharing_a_timestamp(crm, site, clock):
    """The "Older" link pages by (time, key, id): 45 items at one instant are each shown exactly once."""
    lead = site["rita_lead"].id
    same = clock.now() - timedelta(days=1)
    for n in range(25):
        crm.interactions.log(lead, kind="call", subject=f"Call {n:02d}", occurred_at=same, actor="rita@example.com")
    for _ in range(20):
        crm.touchpoints.record(lead, kind="visit", occurred_at=same, source=f"site{_:02d}")
    expected = len(crm.contacts.timeline(lead, limit=500))
    seen: list[str] = []
    with client_for(site["url"], "rita@example.com") as client:
        html = client.get(f"/console/contacts/{lead}").text
        pages = 1
        while True:
            seen += re.findall(r'</time> <span class="badge">[^<]*</span> ([^<]*)</li>', html)
            older = re.search(r'<li class="more"><a href="([^"]+)"', html)
            if older is None:
                break
            html = client.get(older.group(1).replace("&amp;", "&"), headers={"HX-Request": "true"}).text
            pages += 1
    assert pages == 3 and len(seen) == expected == 47  # 45 + the first call + "became lead"
    assert sorted(text for text in seen if text.startswith("Call ")) == [f"Call {n:02d}" for n in range(25)]
    assert len({text for text in seen if text.startswith("source=")}) == 20


def test_a_bad_timeline_position_is_a_clear_error(crm, site):
    with client_for(site["url"], "rita@example.com") as client:
        for bad in ("yesterday", "2026-01-01T00:00:00", "2026-01-01T00:00:00+00:00~touchpoint~x"):
            response = client.get(f"/console/contacts/{site['rita_lead'].id}/timeline", params={"before": bad})
            assert response.status_code == 422, bad


def test_the_campaigns_page_shows_the_funnel_and_roi_without_email_marketing(crm, site):
    crm.leads.qualify(site["rita_lead"].id, reason="Asked for a quote")
    with client_for(site["url"], "mark@example.com") as client:  # a marketer: reports.view
        page = client.get("/console/campaigns")
        assert page.status_code == 200 and 'href="/console/campaigns"' in page.text
        funnel = re.search(r'id="lifecycle-funnel">(.*?)</section>', page.text, re.S).group(1)
        step = r'class="label">(\w+)</span><span class="track"><span class="bar" style="width: (\d+)%">.*?<b>(\d+)</b>'
        steps = re.findall(step, funnel)
        assert steps == [("Leads", "100", "2"), ("Qualified", "50", "1"), ("Customers", "0", "0")]
        pipeline = re.search(r'id="pipeline-funnel">(.*?)</section>', page.text, re.S).group(1)
        assert "Qualification" in pipeline and "$1,349.50" in pipeline  # both open deals in the first stage
        assert "Cost and return per campaign" in page.text
        assert "Email campaigns" not in page.text  # the plugin is not enabled: no panel, no error
        assert client.get("/console/campaigns", params={"from": "2026-13-01"}).status_code == 422
    with client_for(site["url"], "rita@example.com") as client:  # a rep: no reports
        assert client.get("/console/campaigns").status_code == 403
        assert 'href="/console/campaigns"' not in client.get("/console/").text


def test_ticketing_panels_are_in_the_pages_language(crm, site):
    with client_for(site["url"], "alex@example.com") as client:
        client.cookies.set("crm_lang", "fa", path="/console")
        page = client.get(f"/console/contacts/{site['rita_lead'].id}")
        panel = re.search(r'<section class="card panel"><h2>تیکت‌ها</h2>(.*?)</section>', page.text, re.S).group(1)
        assert site["ticket"].number in panel
        assert "جدید" in panel and ">new<" not in panel  # the status "new"
        assert "بدون SLA" in panel  # the badge "no SLA"
        day = client.get("/console/")
        assert "مهلت‌های SLA در خطر" in day.text  # "SLA deadlines at risk"


def test_a_users_own_permissions_and_managed_teams_apply_at_their_next_page(crm, site):
    lead, other = site["rita_lead"].id, site["wes_lead"].id
    with client_for(site["url"], "rita@example.com") as rita, client_for(site["url"], "mia@example.com") as mia:
        assert "Merge a duplicate" not in rita.get(f"/console/contacts/{lead}").text
        assert mia.get(f"/console/contacts/{other}").status_code == 404  # Mia manages east only
        crm.users.grant("rita@example.com", "contacts.merge")
        crm.users.manage_team("mia@example.com", "west")
        assert "Merge a duplicate" in rita.get(f"/console/contacts/{lead}").text
        assert mia.get(f"/console/contacts/{other}").status_code == 200

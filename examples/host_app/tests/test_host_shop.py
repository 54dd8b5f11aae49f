"""The example shop: its accounts sign into the console, orders and purchases share a transaction, its worker runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from host_shop.app import create_app
from host_shop.crm import make_crm
from host_shop.models import Account, Order
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from crmcore.models import Contact
from crmcore.testing.server import live_server

pytest.importorskip("fastapi", reason="the example shop needs FastAPI: pip install -e examples/host_app")


@pytest.fixture
def shop(tmp_path):
    """The shop on a fresh SQLite file, served by uvicorn; yields (client, engine, crm)."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = create_engine(url)
    crm = make_crm(engine, mail_dir=str(tmp_path / "mail"), environment="test",
                   secret_key="a-test-secret-that-is-long-enough-0123456789")  # fmt: skip
    app = create_app(engine, crm)
    crm.products.add("MUG", "Mug", unit_price="12.00")
    crm.users.add("clerk@shop.example", "Cleo Clerk")
    with Session(engine) as session, session.begin():
        for email, name in (("clerk@shop.example", "Cleo Clerk"), ("temp@shop.example", "Tim Temp")):
            account = Account(email=email, name=name)
            account.set_password("correct horse")
            session.add(account)
    with live_server(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield client, engine, crm, url
    crm.dispose()


def counts(engine):
    with Session(engine) as session:
        return session.scalar(select(func.count(Order.id))), session.scalar(select(func.count(Contact.id)))


def test_an_order_and_its_crm_purchase_commit_together(shop):
    client, engine, crm, _ = shop
    placed = client.post("/orders", data={"email": "ada@example.com", "sku": "MUG", "total": "12.00"})
    assert placed.status_code == 201, placed.text
    assert counts(engine) == (1, 1)
    assert crm.contacts.get("ada@example.com").stage == "customer"


def test_an_order_the_crm_refuses_is_not_kept_either(shop):
    client, engine, _, _ = shop
    refused = client.post("/orders", data={"email": "bob@example.com", "sku": "NO-SUCH", "total": "5"})
    assert refused.status_code == 422
    assert "NO-SUCH" in refused.text
    assert counts(engine) == (0, 0)  # neither the shop's order nor the CRM's contact


def test_a_signed_in_shop_account_is_its_crm_user_in_the_console(shop):
    client, *_ = shop
    assert client.get("/crm/console/", follow_redirects=False).status_code in (302, 303)  # not signed in
    signed_in = client.post("/login", data={"email": "clerk@shop.example", "password": "correct horse"},
                            follow_redirects=True)  # fmt: skip
    assert signed_in.status_code == 200
    assert "Cleo Clerk" in signed_in.text  # the console knows the shop's clerk as the CRM user


def test_a_shop_account_without_a_crm_user_gets_no_console(shop):
    client, *_ = shop
    client.post("/login", data={"email": "temp@shop.example", "password": "correct horse"}, follow_redirects=False)
    page = client.get("/crm/console/", follow_redirects=False)
    assert page.status_code in (302, 303) and "/login" in page.headers["location"]


def test_wrong_password_is_refused(shop):
    client, *_ = shop
    assert client.post("/login", data={"email": "clerk@shop.example", "password": "nope"}).status_code == 401


def test_the_shops_worker_runs_the_crms_jobs_with_the_shops_plugins(shop, tmp_path):
    client, _, _, url = shop
    sent = client.post("/crm/ticketing/support", data={"email": "ada@example.com", "subject": "Broken mug",
                                                       "message": "The handle fell off."})  # fmt: skip
    assert sent.status_code < 400, sent.text  # the CRM's public support form, served under the shop's /crm
    assert list(Path(tmp_path / "mail").glob("*.eml")) == []  # nothing sent before a worker runs
    env = {**os.environ, "SHOP_DATABASE_URL": url, "SHOP_MAIL_DIR": str(tmp_path / "mail"),
           "SHOP_ENVIRONMENT": "test", "SHOP_SECRET_KEY": "a-test-secret-that-is-long-enough-0123456789"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "host_shop.worker", "--once"], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    mails = list(Path(tmp_path / "mail").glob("*.eml"))
    assert any("Broken mug" in m.read_text(errors="replace") for m in mails)

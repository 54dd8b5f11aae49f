"""Helpers for the console tests: a live server, signed-in clients, a small CRM to look at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

PASSWORD = "correct horse battery staple"
SETTINGS = {"secret_key": "console-tests-secret-key-0123456789", "console_secure_cookies": "false"}


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(client: httpx.Client, email: str, password: str = PASSWORD, next_path: str = "") -> httpx.Response:
    """Sign in through the form, as a browser would."""
    form = client.get("/console/login")
    return client.post("/console/login", data={"csrf": csrf_of(form.text), "email": email, "password": password,
                                               "next": next_path})  # fmt: skip


@contextmanager
def client_for(base_url: str, email: str | None = None) -> Iterator[httpx.Client]:
    """A fresh client (its own cookie jar), signed in as *email* when given."""
    with httpx.Client(base_url=base_url, timeout=20) as client:
        if email:
            response = sign_in(client, email)
            assert response.status_code == 303, response.text
        yield client


def seed(crm: Any) -> dict[str, Any]:
    """Teams east and west, one user of each built-in role, contacts and deals owned by the reps."""
    users = {
        "rita": crm.users.add("rita@example.com", "Rita Rep", role="rep", team="east", password=PASSWORD),
        "wes": crm.users.add("wes@example.com", "Wes West", role="rep", team="west", password=PASSWORD),
        "mia": crm.users.add("mia@example.com", "Mia Manager", role="manager", password=PASSWORD),
        "alex": crm.users.add("alex@example.com", "Alex Agent", role="agent", password=PASSWORD),
        "mark": crm.users.add("mark@example.com", "Mark Marketer", role="marketer", password=PASSWORD),
        "ada": crm.users.add("ada@example.com", "Ada Admin", role="admin", password=PASSWORD),
    }
    crm.users.manage_team("mia@example.com", "east")
    rita_lead = crm.contacts.add(email="leila@example.org", first_name="Leila", last_name="Ahmadi",
                                 owner=users["rita"].id, phone="+98 912 345 6789")  # fmt: skip
    wes_lead = crm.contacts.add(email="omar@example.org", first_name="Omar", last_name="Haddad", owner=users["wes"].id)
    deal = crm.sales.create_opportunity(rita_lead.id, name="Leila's order", amount="1250.50", owner=users["rita"].id)
    other_deal = crm.sales.create_opportunity(wes_lead.id, name="Omar's order", amount="99", owner=users["wes"].id)
    crm.interactions.log(rita_lead.id, kind="call", subject="First call", actor=users["rita"].id)
    return {"users": users, "rita_lead": rita_lead, "wes_lead": wes_lead, "deal": deal, "other_deal": other_deal}

"""The staff console over real HTTP: sign-in, pages, actions, and what each user may reach."""

from __future__ import annotations

import pytest

from crmcore.testing.server import live_server

from .console_support import SETTINGS, client_for, csrf_of, seed, sign_in


@pytest.fixture
def crm_settings():
    return dict(SETTINGS)


@pytest.fixture
def site(crm):
    data = seed(crm)
    with live_server(crm.asgi_app()) as base_url:
        data["url"] = base_url
        yield data


def test_sign_in_my_day_contact_and_sign_out(crm, site):
    with client_for(site["url"]) as client:
        assert client.get("/console/").headers["location"].startswith("/console/login?next=/console/")
        response = sign_in(client, "rita@example.com")
        assert response.status_code == 303 and response.headers["location"] == "/console/"
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
        day = client.get("/console/")
        assert day.status_code == 200 and "Rita Rep" in day.text and "My day" in day.text
        contact = client.get(f"/console/contacts/{site['rita_lead'].id}")
        assert contact.status_code == 200
        assert "Leila Ahmadi" in contact.text and "First call" in contact.text
        logout = client.post("/console/logout", data={"csrf": csrf_of(day.text)})
        assert logout.status_code == 303
        assert client.get("/console/").status_code == 303

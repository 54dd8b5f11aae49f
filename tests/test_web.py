"""The ASGI app: plugin routes, errors as JSON or HTML, body size limit — over real HTTP."""

from __future__ import annotations

import pytest
from starlette.responses import JSONResponse
from starlette.routing import Route

from crmcore import hookimpl
from crmcore.errors import NotFound, ValidationError
from crmcore.web import crm_of


class Routes:
    @hookimpl
    def crm_register_routes(self, crm):
        async def lead(request):
            data = await request.json()
            contact = crm_of(request).leads.capture(**data)
            return JSONResponse({"id": contact.id}, status_code=201)

        async def missing(request):
            raise NotFound("no such thing")

        async def crash(request):
            raise RuntimeError("secret internals")

        return [
            Route("/demo/leads", lead, methods=["POST"]),
            Route("/demo/missing", missing),
            Route("/demo/crash", crash),
        ]


@pytest.fixture
def crm_plugins():
    return [Routes()]


def test_plugin_routes_capture_through_the_services(http, crm):
    answer = http.post("/demo/leads", json={"email": "ada@example.com"})
    assert answer.status_code == 201
    assert crm.contacts.get("ada@example.com").id == answer.json()["id"]


def test_validation_errors_are_422_with_per_field_messages(http, crm):
    answer = http.post("/demo/leads", json={"email": "nope", "country": "Narnia"})
    assert answer.status_code == 422
    assert set(answer.json()["errors"]) == {"email", "country"}
    assert crm.contacts.list() == []


def test_errors_are_html_for_browsers_and_never_show_internals(http):
    page = http.get("/demo/missing", headers={"accept": "text/html"})
    assert page.status_code == 404 and "no such thing" in page.text and "<h1>404</h1>" in page.text
    crash = http.get("/demo/crash", headers={"accept": "text/html"})
    assert crash.status_code == 500
    assert "secret internals" not in crash.text and "Traceback" not in crash.text


def test_oversized_body_is_refused_with_413(http, crm):
    answer = http.post(
        "/demo/leads", content=b"{" + b" " * 2_000_000 + b"}", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413
    assert crm.contacts.list() == []


def test_health(http):
    assert http.get("/healthz").json() == {"ok": True}


def test_validation_error_class_maps_to_422():
    assert ValidationError({"x": "y"}).http_status == 422

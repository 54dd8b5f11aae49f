"""The shop's web app: its own sign-in and orders, with the CRM mounted under ``/crm``.

- ``/login`` and ``/logout`` are the shop's; a signed-in account is ``request.user``
  (Starlette's ``AuthenticationMiddleware``), and the CRM's console under
  ``/crm/console/`` signs the matching CRM user in by itself.
- ``POST /orders`` writes the shop's order and records the purchase in the CRM
  in **one** transaction: if either fails, neither is kept.
- ``/crm/...`` is ``crm.asgi_app()``: web forms, tracked links, ticket status pages, the console.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.authentication import AuthCredentials, AuthenticationBackend
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection

from crmcore import CRM
from crmcore.errors import CRMError
from host_shop.crm import make_crm, make_engine
from host_shop.models import Account, Order, ShopBase


class ShopSessions(AuthenticationBackend):
    """``request.user`` is the account whose id the shop's session cookie holds."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, Any] | None:
        account_id = conn.session.get("account_id")
        if account_id is None:
            return None
        with Session(self.engine, expire_on_commit=False) as session:
            account = session.get(Account, account_id)
        return (AuthCredentials(["authenticated"]), account) if account else None


def create_app(engine: Engine | None = None, crm: CRM | None = None, *, secret: str = "shop-cookie-secret") -> FastAPI:
    """The shop's ASGI app; tests pass their own engine and CRM."""
    engine = engine or make_engine()
    crm = crm or make_crm(engine)
    ShopBase.metadata.create_all(engine)  # the shop's tables, the shop's way
    crm.db_upgrade()                      # the CRM's, in their own migration history

    app = FastAPI(title="Example shop")
    app.state.engine, app.state.crm = engine, crm

    @app.post("/login")
    def login(request: Request, email: str = Form(), password: str = Form()) -> RedirectResponse:
        with Session(engine) as session:
            account = session.scalar(select(Account).where(Account.email == email.strip().lower()))
            if account is None or not account.check_password(password):
                raise HTTPException(401, "wrong email or password")
            request.session["account_id"] = account.id
        return RedirectResponse("/crm/console/", status_code=303)

    @app.post("/logout")
    def logout(request: Request) -> RedirectResponse:
        request.session.clear()
        return RedirectResponse("/", status_code=303)

    @app.post("/orders", status_code=201)
    def place_order(email: str = Form(), sku: str = Form(), total: str = Form()) -> dict[str, Any]:
        try:
            amount = Decimal(total)
        except InvalidOperation:
            raise HTTPException(422, "total must be a number") from None
        try:
            with Session(engine) as session, session.begin():
                order = Order(email=email, sku=sku, total=amount)
                session.add(order)
                session.flush()
                with crm.transaction(session=session):  # the CRM joins the shop's transaction
                    contact = crm.leads.capture(email=email, touch={"kind": "conversion", "value": str(amount)})
                    crm.customers.record_purchase(contact.id, sku=sku, price=amount,
                                                  external_ref=f"shop-order-{order.id}")  # fmt: skip
                return {"order": order.id, "contact": contact.id}
        except CRMError as exc:  # refused by the CRM: the order is not kept either
            raise HTTPException(exc.http_status, str(exc)) from None

    app.mount("/crm", crm.asgi_app())
    # Outermost first: the session cookie, then the account it names as request.user (also seen by /crm).
    app.add_middleware(AuthenticationMiddleware, backend=ShopSessions(engine))
    app.add_middleware(SessionMiddleware, secret_key=secret, same_site="lax", https_only=False)
    return app

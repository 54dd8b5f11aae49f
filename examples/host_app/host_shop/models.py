"""The shop's own tables, on its own declarative base, in the same database as the CRM's."""

from __future__ import annotations

import hashlib
import hmac
import os
from decimal import Decimal

from sqlalchemy import Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class ShopBase(DeclarativeBase):
    """The host's metadata: crmcore never touches it (and the shop never touches crmcore's)."""


class Account(ShopBase):
    """A shop staff account. The CRM maps it to a CRM user by email (``crm_host_account_user``)."""

    __tablename__ = "shop_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))

    @property
    def is_authenticated(self) -> bool:
        """Starlette's ``request.user`` protocol."""
        return True

    @property
    def display_name(self) -> str:
        """Starlette's ``request.user`` protocol."""
        return self.name

    def set_password(self, password: str) -> None:
        """Store a salted scrypt hash (the shop's own choice; the CRM never sees it)."""
        salt = os.urandom(16)
        digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
        self.password_hash = f"{salt.hex()}:{digest.hex()}"

    def check_password(self, password: str) -> bool:
        """True if *password* is this account's."""
        salt, _, digest = self.password_hash.partition(":")
        candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
        return hmac.compare_digest(candidate.hex(), digest)


class Order(ShopBase):
    """A shop order. Placing one records the purchase in the CRM, in the same transaction."""

    __tablename__ = "shop_order"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    sku: Mapped[str] = mapped_column(String(60))
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))

"""Signed, expiring tokens for links in emails and pages (itsdangerous, with key rotation).

Every token carries a *purpose* (its salt), so a token made for one use
(unsubscribe) is worthless for another (survey answer). Tokens are verified
against the current ``secret_key`` and every ``old_secret_keys`` entry, and
signed with the current one: rotate by moving the old key into
``old_secret_keys``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore.errors import CRMError

if TYPE_CHECKING:
    from crmcore.clock import Clock
    from crmcore.settings import Settings


class InvalidToken(CRMError):
    """A token that was tampered with, made for another purpose, or expired."""

    http_status = 400

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class Signer:
    """``crm.signer``: makes and checks tokens for one CRM's secrets."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        from itsdangerous import TimestampSigner

        class ClockSigner(TimestampSigner):
            """Timestamps from the CRM's clock, so a frozen clock controls expiry."""

            def get_timestamp(self) -> int:
                return int(clock.now().timestamp())

        self._keys = [*settings.old_secret_keys, settings.secret_key]
        self._signer_class = ClockSigner
        self._serializers: dict[str, Any] = {}

    def _serializer(self, purpose: str) -> Any:
        """One serializer per purpose, built once (a third of a token's cost otherwise)."""
        serializer = self._serializers.get(purpose)
        if serializer is None:
            from itsdangerous import URLSafeTimedSerializer

            serializer = URLSafeTimedSerializer(self._keys, salt=f"crmcore:{purpose}", signer=self._signer_class)
            self._serializers[purpose] = serializer
        return serializer

    def dumps(self, purpose: str, data: Any) -> str:
        """A URL-safe token carrying *data* (JSON-able) for *purpose*."""
        token: str = self._serializer(purpose).dumps(data)
        return token

    def loads(self, purpose: str, token: str, *, max_age: float | None = None) -> Any:
        """The data of a valid *token* for *purpose*; :class:`InvalidToken` otherwise."""
        from itsdangerous import BadSignature, SignatureExpired

        if not isinstance(token, str) or not token or len(token) > 4096:
            raise InvalidToken("invalid link")
        try:
            return self._serializer(purpose).loads(token, max_age=max_age)
        except SignatureExpired:
            raise InvalidToken("this link has expired", expired=True) from None
        except BadSignature:
            raise InvalidToken("invalid link") from None

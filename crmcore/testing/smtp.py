"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives, for tests."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from email.message import EmailMessage
from typing import Any


class SMTPSink:
    """Accepts mail on a free port; ``messages`` holds what arrived (parsed).

    ``refuse[address] = "550 5.1.1 no such user"`` makes it refuse a recipient;
    ``fail_next(n, "451 4.3.0 try later")`` refuses the next *n* messages;
    ``smtputf8=False`` leaves out the SMTPUTF8 extension (non-ASCII addresses).
    """

    def __init__(self, host: str = "127.0.0.1", *, smtputf8: bool = True) -> None:
        from aiosmtpd.controller import Controller

        self.host = host
        self.port = _free_port(host)
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse: dict[str, str] = {}
        self.connections = 0
        self._failures: list[str] = []
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname=host, port=self.port, enable_SMTPUTF8=smtputf8)

    def start(self) -> SMTPSink:
        """Start serving."""
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.controller.stop()

    def fail_next(self, count: int, reply: str = "451 4.3.0 Try again later") -> None:
        """Refuse the next *count* messages with *reply*."""
        with self._lock:
            self._failures.extend([reply] * count)

    # aiosmtpd handler methods
    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self._lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        reply = self.refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            if self._failures:
                return self._failures.pop(0)
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            self.messages.append(parsed)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        """Messages that arrived for *address*."""
        return [m for m in self.messages if address.lower() in str(m["To"]).lower()]


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port

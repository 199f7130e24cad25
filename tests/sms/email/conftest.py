"""A real SMTP server (aiosmtpd, in its own thread) that records what it received, and can
refuse chosen recipients or go away and come back on the same port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from sms.email.settings import EmailSettings


class Recorder:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.refuse: set[str] = set()
        self.busy = False  # answer 451 to every recipient (try later)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: Any) -> str:
        if address.lower() in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: no such user"
        if self.busy:
            return "451 4.3.2 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                              bytes(envelope.original_content or envelope.content)))
        return "250 2.0.0 queued"

    def messages(self) -> list[EmailMessage]:
        return [BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[misc]
                for _, _, raw in self.received]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    def __init__(self) -> None:
        self.recorder = Recorder()
        self.port = free_port()
        self.controller: Controller | None = None

    def up(self) -> None:
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def down(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def settings(self, **kw: Any) -> EmailSettings:
        base: dict[str, Any] = dict(
            host="127.0.0.1", port=self.port, starttls=False, tls=False,
            from_address="Acme Motors <hello@acme.example>", reply_to="team@acme.example",
            postal_address="1 Main St, Springfield, IL 62701",
            unsubscribe_base_url="https://acme.example", timeout_s=5.0,
            backoff_base_s=30.0)
        base.update(kw)
        return EmailSettings(**base)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.up()
    try:
        yield server
    finally:
        server.down()

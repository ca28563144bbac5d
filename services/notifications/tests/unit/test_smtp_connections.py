"""The mailer keeps its SMTP connections between batches, on a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from juniper_testkit import free_port
from notifications.adapters.smtp import SmtpMailer
from notifications.domain.delivery import Outcome
from notifications.settings import NotificationsSettings


class CountingServer:
    """Accepts every message and counts the connections that said HELO/EHLO."""

    def __init__(self) -> None:
        self.greetings = 0
        self.received: list[str] = []

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: Any
    ) -> Any:
        self.greetings += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.received.extend(envelope.rcpt_tos)
        return "250 OK"


def message(n: int) -> EmailMessage:
    email = EmailMessage()
    email["Subject"] = f"Receipt {n}"
    email["From"] = "orders@junipermarket.test"
    email["To"] = f"buyer{n}@example.com"
    email.set_content("Paid, thank you.")
    return email


async def test_batches_reuse_one_connection_and_a_dropped_one_is_replaced() -> None:
    server = CountingServer()
    port = free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    settings = NotificationsSettings(
        auth_jwt_secret="dev-only-secret",  # type: ignore[arg-type]
        smtp_port=port,
        smtp_retry_max_seconds=2.0,
    )
    mailer = SmtpMailer(settings)
    try:
        for n in range(3):  # three batches, one after another
            async with mailer.session() as session:
                result = await session.send(message(n), recipient=f"buyer{n}@example.com")
                assert result.outcome is Outcome.SENT
        assert server.greetings == 1

        # The server goes away and comes back: the idle connection it dropped is replaced.
        controller.stop()
        controller = Controller(server, hostname="127.0.0.1", port=port)
        controller.start()
        async with mailer.session() as session:
            result = await session.send(message(3), recipient="buyer3@example.com")
        assert result.outcome is Outcome.SENT
        assert server.greetings == 2
        assert server.received == [f"buyer{n}@example.com" for n in range(4)]
    finally:
        await mailer.close()
        controller.stop()

"""A real SMTP server (aiosmtpd) and the notifications service on real Kafka and FerretDB."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from juniper_shared.contracts.events import Envelope as Event
from juniper_shared.contracts.registry import encode, topic_of
from juniper_testkit import bearer, free_port, kafka_credentials, serving, wait_until
from notifications.bootstrap import build_app
from notifications.settings import NotificationsSettings


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class SmtpInbox:
    """An SMTP server on a free port that keeps what it receives; it can refuse addresses
    (550) and be stopped and started again to play an outage."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self.refuse: set[str] = set()
        self._controller: Controller | None = None

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[arg-type]
        self.received.append(
            Received(str(envelope.mail_from), list(envelope.rcpt_tos), message)  # type: ignore[arg-type]
        )
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def wait_for(self, count: int) -> None:
        """Until `count` messages have arrived (bounded)."""

        async def received() -> int:
            return len(self.received)

        await wait_until(received, equals=count, timeout=30)

    def by_message_id(self, event: Event) -> list[Received]:
        wanted = f"<{event.event_id}@junipermarket.notifications>"
        return [item for item in self.received if item.message["Message-ID"] == wanted]


@pytest.fixture
def smtp() -> Iterator[SmtpInbox]:
    inbox = SmtpInbox()
    inbox.start()
    yield inbox
    inbox.stop()


class Service:
    def __init__(self, base_url: str, producer: AIOKafkaProducer, prefix: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10)
        self._producer = producer
        self._prefix = prefix

    async def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            await self._producer.send(
                self._prefix + topic_of(event).name,
                encode(event),
                key=event.key().encode(),
                headers=[("type", event.type.encode())],
            )
        await self._producer.flush()

    async def notifications(self, seller_id: str, order_id: str) -> list[dict[str, Any]]:
        response = await self.http.get(
            "/v1/notifications", params={"order_id": order_id}, headers=bearer(seller_id)
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def statuses(self, seller_id: str, order_id: str) -> list[str]:
        return [item["status"] for item in await self.notifications(seller_id, order_id)]


@pytest.fixture
async def service(
    infra: Any, database_name: str, unique: str, smtp: SmtpInbox
) -> AsyncIterator[Service]:
    prefix = f"t{unique}."
    await infra.provision(prefix, partitions=1)
    settings = NotificationsSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        mongodb_url=infra.mongodb_url,
        mongodb_database=database_name,
        kafka_topic_prefix=prefix,
        auth_jwt_secret="dev-only-secret",
        **kafka_credentials("notifications"),
        outbox_poll_seconds=0.5,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_retry_attempts=2,
        smtp_retry_max_seconds=1.0,
        smtp_timeout_seconds=5.0,
    )
    # Publishes orders.events and invoices.events in the name of their writers: as `ops`.
    producer = AIOKafkaProducer(**infra.kafka("ops"), enable_idempotence=True)
    await producer.start()
    try:
        async with serving(build_app(settings)) as base_url:
            service = Service(base_url, producer, prefix)
            try:
                yield service
            finally:
                await service.http.aclose()
    finally:
        await producer.stop()

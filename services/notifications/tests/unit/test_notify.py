"""The handler on fakes: one email per event, duplicates harmless, outages lose nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from notifications.adapters.rendering import EmailComposer
from notifications.application.handlers import MailServerUnavailable, NotificationHandlers
from notifications.application.ports import DeliveryView
from notifications.domain.delivery import Outcome, SendResult, Status, still_to_send
from notifications.domain.notices import Notice
from notifications.settings import NotificationsSettings


class MemoryLog:
    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    async def still_to_send(self, notices: Sequence[Notice]) -> list[Notice]:
        return [
            notice
            for notice in notices
            if still_to_send(self.entries.get(notice.event_id, {}).get("status", Status.PENDING))
        ]

    async def record(
        self, outcomes: Sequence[tuple[Notice, SendResult | None]], *, now: datetime
    ) -> None:
        for notice, result in outcomes:
            entry = self.entries.setdefault(
                notice.event_id,
                {"notice": notice, "status": Status.PENDING, "attempts": 0, "error": ""},
            )
            if result is not None:
                entry.update(status=result.status, error=result.error)
                entry["attempts"] += result.attempts

    async def for_order(self, seller_id: str, order_id: str) -> list[DeliveryView]:
        raise NotImplementedError

    def statuses(self) -> list[str]:
        return [entry["status"].value for entry in self.entries.values()]


class FakeMailer:
    """A mail server that can be down, refuse addresses, and counts connections."""

    def __init__(self) -> None:
        self.inbox: list[EmailMessage] = []
        self.down = False
        self.refuse: set[str] = set()
        self.sessions = 0
        self.in_flight = 0
        self.most_in_flight = 0

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[FakeMailer]:
        self.sessions += 1
        yield self

    async def send(self, message: EmailMessage, *, recipient: str) -> SendResult:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0)
        self.in_flight -= 1
        if self.down:
            return SendResult(Outcome.DEFERRED, 5, "ConnectionRefusedError")
        if recipient in self.refuse:
            return SendResult(Outcome.FAILED, 1, f"{recipient}: 550 no such user")
        self.inbox.append(message)
        return SendResult(Outcome.SENT, 1)


@pytest.fixture
def log() -> MemoryLog:
    return MemoryLog()


@pytest.fixture
def mailer() -> FakeMailer:
    return FakeMailer()


@pytest.fixture
def notify(log: MemoryLog, mailer: FakeMailer) -> NotificationHandlers:
    settings = NotificationsSettings(auth_jwt_secret="dev-only-secret")
    return NotificationHandlers(
        deliveries=log,
        mailer=mailer,
        compose=EmailComposer(sender=settings.sender(), links=settings.buyer_link_keys()),
        concurrency=8,
        clock=lambda: datetime(2026, 11, 26, 12, tzinfo=UTC),
    )


async def test_a_rejected_order_emails_the_buyer_once_however_often_it_arrives(
    notify: NotificationHandlers, mailer: FakeMailer, log: MemoryLog, events: Any, snapshot: Any
) -> None:
    rejected = events.rejected(snapshot(), "out_of_stock")
    await notify.notify([rejected, rejected])
    await notify.notify([rejected])
    assert [message["Message-ID"] for message in mailer.inbox] == [
        f"<{rejected.event_id}@junipermarket.notifications>"
    ]
    assert log.statuses() == ["sent"]


async def test_a_received_order_sends_nothing(
    notify: NotificationHandlers, mailer: FakeMailer, log: MemoryLog, events: Any, snapshot: Any
) -> None:
    await notify.notify([events.received(snapshot())])
    assert mailer.inbox == []
    assert log.entries == {}


async def test_an_outage_leaves_emails_pending_and_they_go_out_once_when_it_ends(
    notify: NotificationHandlers, mailer: FakeMailer, log: MemoryLog, events: Any, snapshot: Any
) -> None:
    batch = [events.accepted(snapshot()) for _ in range(20)]
    mailer.down = True
    with pytest.raises(MailServerUnavailable):
        await notify.notify(batch)
    assert mailer.inbox == []
    assert set(log.statuses()) == {"pending"}

    mailer.down = False
    await notify.notify(batch)
    assert sorted(message["Message-ID"] for message in mailer.inbox) == sorted(
        f"<{event.event_id}@junipermarket.notifications>" for event in batch
    )
    assert set(log.statuses()) == {"sent"}


async def test_a_refused_address_is_recorded_as_failed_and_not_tried_again(
    notify: NotificationHandlers, mailer: FakeMailer, log: MemoryLog, events: Any, snapshot: Any
) -> None:
    nobody = {"id": "b-2", "name": "Nobody", "email": "nobody@example.com"}
    refused = events.cancelled(snapshot(buyer=nobody), "sorry")
    delivered = events.accepted(snapshot())
    mailer.refuse.add("nobody@example.com")
    await notify.notify([refused, delivered])
    await notify.notify([refused])
    assert [message["To"] for message in mailer.inbox] == ["Ada Buyer <ada@example.com>"]
    entry = log.entries[str(refused.event_id)]
    assert entry["status"] is Status.FAILED
    assert entry["attempts"] == 1
    assert "550" in entry["error"]


async def test_a_large_batch_is_sent_by_a_bounded_number_of_connections(
    notify: NotificationHandlers, mailer: FakeMailer, events: Any, snapshot: Any
) -> None:
    await notify.notify([events.accepted(snapshot()) for _ in range(50)])
    assert len(mailer.inbox) == 50
    assert mailer.sessions == 8
    assert 1 < mailer.most_in_flight <= 8


async def test_an_address_no_email_can_carry_fails_for_good_without_holding_up_the_batch(
    notify: NotificationHandlers, mailer: FakeMailer, log: MemoryLog, events: Any, snapshot: Any
) -> None:
    unreachable = {"id": "buyer-jo", "name": "Jö", "email": "jö@example.com"}
    fine = events.accepted(snapshot())
    await notify.notify([events.accepted(snapshot(buyer=unreachable)), fine])
    assert [message["Message-ID"] for message in mailer.inbox] == [
        f"<{fine.event_id}@junipermarket.notifications>"
    ]
    assert sorted(log.statuses()) == ["failed", "sent"]

"""One handler: turn a batch of events into emails, each sent once and logged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from datetime import datetime

from juniper_shared.clock import utc_now
from juniper_shared.contracts.events import Envelope
from juniper_shared.errors import RetryLater

from notifications.application.ports import (
    Composer,
    DeliveryLog,
    DeliveryView,
    Mailer,
    MailSession,
    Uncomposable,
)
from notifications.domain.delivery import Outcome, SendResult
from notifications.domain.notices import Notice, notice_for
from notifications.metrics import EMAILS


class MailServerUnavailable(RetryLater):
    """Emails stayed pending after bounded retries; the batch must come again."""


class NotificationHandlers:
    def __init__(
        self,
        *,
        deliveries: DeliveryLog,
        mailer: Mailer,
        compose: Composer,
        concurrency: int = 8,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.deliveries = deliveries
        self._mailer = mailer
        self._compose = compose
        self._concurrency = concurrency
        self._clock = clock

    async def notify(self, events: Sequence[Envelope]) -> None:
        """Email the buyer about each event once. Raises MailServerUnavailable when some emails
        could not reach the mail server: they stay pending and go out when the batch comes again.

        Emails go out in waves of `concurrency`, one per mail connection, and each wave's
        outcomes are stored in one write: a crash re-sends at most one wave (the same
        Message-IDs), and a batch costs one read and one write per wave."""
        notices: dict[str, Notice] = {}
        for event in events:
            notice = notice_for(event)
            if notice is not None:
                notices.setdefault(notice.event_id, notice)
        if not notices:
            return
        to_send = await self.deliveries.still_to_send(list(notices.values()))
        if not to_send:
            return
        async with AsyncExitStack() as connections:
            sessions = [
                await connections.enter_async_context(self._mailer.session())
                for _ in range(min(self._concurrency, len(to_send)))
            ]
            for start in range(0, len(to_send), len(sessions)):
                wave = to_send[start : start + len(sessions)]
                results = await asyncio.gather(
                    *(
                        self._send(session, notice)
                        for session, notice in zip(sessions, wave, strict=False)
                    )
                )
                deferred = [r.error for r in results if r.outcome is Outcome.DEFERRED]
                # After one email is deferred the server is down: the rest stay pending.
                untried = to_send[start + len(wave) :] if deferred else []
                await self.deliveries.record(
                    [*zip(wave, results, strict=True), *((notice, None) for notice in untried)],
                    now=self._clock(),
                )
                if deferred:
                    raise MailServerUnavailable(
                        f"{len(deferred) + len(untried)} emails left pending: {deferred[0]}"
                    )

    async def _send(self, session: MailSession, notice: Notice) -> SendResult:
        try:
            message = self._compose(notice, now=self._clock())
        except Uncomposable as error:
            result = SendResult(Outcome.FAILED, 0, f"cannot compose: {error}"[:500])
        else:
            result = await session.send(message, recipient=notice.to_email)
        EMAILS.labels(notice.template, result.outcome.value).inc()
        return result

    async def for_order(self, seller_id: str, order_id: str) -> list[DeliveryView]:
        return await self.deliveries.for_order(seller_id, order_id)

"""One handler: turn a batch of events into emails, each sent once and logged."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime

from juniper_shared.clock import utc_now
from juniper_shared.contracts.events import Envelope
from juniper_shared.errors import RetryLater

from notifications.application.ports import (
    Composer,
    DeliveryLog,
    DeliveryView,
    Mailer,
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
        could not reach the mail server: they stay pending and go out when the batch comes again."""
        notices: dict[str, Notice] = {}
        for event in events:
            notice = notice_for(event)
            if notice is not None:
                notices.setdefault(notice.event_id, notice)
        if not notices:
            return
        to_send = await self.deliveries.open(list(notices.values()), now=self._clock())
        if not to_send:
            return
        queue = deque(to_send)
        deferred: list[str] = []

        async def worker() -> None:
            async with self._mailer.session() as session:
                # After one email is deferred the server is down: leave the rest pending.
                while queue and not deferred:
                    notice = queue.popleft()
                    try:
                        message = self._compose(notice, now=self._clock())
                    except Uncomposable as error:
                        result = SendResult(Outcome.FAILED, 0, f"cannot compose: {error}"[:500])
                    else:
                        result = await session.send(message, recipient=notice.to_email)
                    await self.deliveries.record(notice, result, now=self._clock())
                    EMAILS.labels(notice.template, result.outcome.value).inc()
                    if result.outcome is Outcome.DEFERRED:
                        deferred.append(result.error)

        async with asyncio.TaskGroup() as workers:
            for _ in range(min(self._concurrency, len(to_send))):
                workers.create_task(worker())
        if deferred:
            raise MailServerUnavailable(
                f"{len(deferred) + len(queue)} emails left pending: {deferred[0]}"
            )

    async def for_order(self, seller_id: str, order_id: str) -> list[DeliveryView]:
        return await self.deliveries.for_order(seller_id, order_id)

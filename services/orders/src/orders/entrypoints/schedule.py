"""The expiry sweep: every few seconds, on the one replica holding the lease."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from orders.application.expiry import ExpirySweep
from orders.application.ports import Lease
from orders.metrics import EXPIRY_LAG, EXPIRY_OUTCOMES, EXPIRY_SWEEPER

log = logging.getLogger(__name__)

MAX_PAGES_PER_TICK = 1000


class ExpirySweeper:
    """Runs `expire_due` page after page while this replica holds the lease, renewing it between
    pages; every replica measures the lag, so a sweeper that stopped is seen by the others."""

    def __init__(
        self,
        expiry: ExpirySweep,
        lease: Lease,
        *,
        every: float,
        page_size: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._expiry = expiry
        self._lease = lease
        self._every = every
        self._page_size = page_size
        self._clock = clock
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def holds_lease(self) -> bool:
        return self._lease.held

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="expiry-sweeper")

    async def stop(self) -> None:
        """Finish the page in hand, then give the lease up for another replica."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self._lease.release()
        EXPIRY_SWEEPER.set(0)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("expiry sweep failed; trying again in %.0f s", self._every)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._every)

    async def tick(self) -> int:
        """One sweep if this replica holds the lease; returns how many orders it expired."""
        if not await self._lease.hold():
            EXPIRY_SWEEPER.set(0)
            self._measure(await self._expiry.oldest_due())
            return 0
        EXPIRY_SWEEPER.set(1)
        expired = 0
        for number in range(MAX_PAGES_PER_TICK):
            page = await self._expiry.expire_due(limit=self._page_size)
            if number == 0:
                self._measure(page.oldest_due)
            for outcome in page.outcomes:
                EXPIRY_OUTCOMES.labels(outcome.value).inc()
            expired += page.expired
            if not (page.full and page.progressed) or self._stopping.is_set():
                break
            if not await self._lease.hold():
                break  # another replica took over; it goes on from the index's head
        if expired:
            log.info("expired %d pending orders", expired)
        return expired

    def _measure(self, oldest_due: datetime | None) -> None:
        lag = 0.0 if oldest_due is None else (self._clock() - oldest_due).total_seconds()
        EXPIRY_LAG.set(max(lag, 0.0))

"""Expiring the pending orders a seller did not answer in time."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from juniper_shared.clock import utc_now
from juniper_shared.contracts.events import (
    OrderExpired,
    OrderExpiredData,
)

from orders.application.events import envelope, snapshot
from orders.application.ports import (
    Clock,
    OrderRepository,
    SellerSettingsRepository,
    VersionConflict,
)
from orders.domain.expiry import deadline
from orders.domain.order import Order

log = logging.getLogger(__name__)


EXPIRY_CONCURRENCY = 16
"""Expiry writes of one sweep page in flight at once (FerretDB holds a connection per write)."""


class Expiry(StrEnum):
    EXPIRED = "expired"
    LOST = "lost"
    """Accepted, rejected, edited or expired elsewhere between the page read and the write."""
    RESCHEDULED = "rescheduled"
    """Its deadline was computed with another window than the seller's; now it is not due."""
    FAILED = "failed"


@dataclass(frozen=True)
class SweepPage:
    """What one page of the expiry sweep found and did."""

    outcomes: list[Expiry]
    oldest_due: datetime | None
    """The deadline of the oldest due order on the page (the sweep's lag is now minus it)."""
    full: bool
    """Every order on the page was due: more may be waiting."""

    @property
    def expired(self) -> int:
        return self.outcomes.count(Expiry.EXPIRED)

    @property
    def progressed(self) -> bool:
        return any(outcome is not Expiry.FAILED for outcome in self.outcomes)


@dataclass
class ExpirySweep:
    orders: OrderRepository
    seller_settings: SellerSettingsRepository
    clock: Clock = utc_now

    async def expire_due(self, *, limit: int) -> SweepPage:
        """Expire the due orders among the `limit` pending orders with the earliest deadlines.

        Each expiry is the order's own guarded write (pending, deadline passed, the version
        read): a crash mid-page loses nothing and a second sweeper expires nothing twice."""
        now = self.clock()
        page = await self.orders.pending_by_deadline(limit)
        due = [order for order in page if order.expires_at is None or order.expires_at <= now]
        sellers = {order.seller_id for order in due}
        windows = dict(
            zip(
                sellers,
                [
                    chosen.pending_order_expiry_days
                    for chosen in await asyncio.gather(
                        *(self.seller_settings.get(seller) for seller in sellers)
                    )
                ],
                strict=True,
            )
        )
        slots = asyncio.Semaphore(EXPIRY_CONCURRENCY)

        async def expire(order: Order) -> Expiry:
            async with slots:
                try:
                    return await self._expire(order, window=windows[order.seller_id], now=now)
                except Exception:
                    # One order's failure stays with it; the sweep goes on with the others.
                    log.exception("could not expire order %s", order.order_id)
                    return Expiry.FAILED

        deadlines = [order.expires_at for order in due if order.expires_at is not None]
        return SweepPage(
            outcomes=list(await asyncio.gather(*(expire(order) for order in due))),
            oldest_due=min(deadlines, default=now if due else None),
            full=len(page) == limit and len(due) == len(page),
        )

    async def oldest_due(self) -> datetime | None:
        """The deadline of the oldest pending order past it, if any."""
        first = await self.orders.pending_by_deadline(1)
        if not first:
            return None
        expires_at = first[0].expires_at
        if expires_at is None:
            return first[0].placed_at
        return expires_at if expires_at <= self.clock() else None

    async def _expire(self, order: Order, *, window: int, now: datetime) -> Expiry:
        if order.expires_at is None or order.expiry_days != window:
            # Computed with another window (a settings change raced this order's arrival) or
            # before there were windows: the seller's current window decides.
            moved = (
                deadline(order.placed_at, window)
                if order.expires_at is None
                else order.expires_at + timedelta(days=window - (order.expiry_days or window))
            )
            if not await self.orders.schedule(
                order.order_id, expires_at=moved, days=window, was_days=order.expiry_days
            ):
                return Expiry.LOST
            order.expires_at, order.expiry_days = moved, window
            if moved > now:
                return Expiry.RESCHEDULED
        order.version += 1
        order.expire(now=now)
        assert order.expires_at is not None
        data = OrderExpiredData(
            order=snapshot(order), expires_at=order.expires_at, split_into=order.split_into
        )
        # Deterministic: an order expires once, so its expiry is one event whoever sends it.
        event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"junipermarket:orders:{order.order_id}:expired")
        try:
            await self.orders.save(
                order, [envelope(OrderExpired, order, data, event_id=event_id)], due_by=now
            )
        except VersionConflict:
            return Expiry.LOST
        return Expiry.EXPIRED

"""The expiry sweep and the seller's window, on fakes: what expires, what moves, what is told."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from juniper_shared.contracts.events import Envelope, OrderExpired
from orders.application.commands import SellerCommands
from orders.application.expiry import Expiry, ExpirySweep
from orders.application.ports import VersionConflict
from orders.domain.expiry import SellerSettings, deadline
from orders.domain.order import Order, Status

from .test_order_domain import NOW, new_order


@dataclass
class FakeOrders:
    stored: dict[str, Order] = field(default_factory=dict)
    events: list[Envelope] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def add(self, order: Order) -> None:
        self.stored[order.order_id] = copy.deepcopy(order)

    async def pending_by_deadline(self, limit: int) -> list[Order]:
        pending = [o for o in self.stored.values() if o.status is Status.PENDING]
        pending.sort(key=lambda o: (o.expires_at is not None, o.expires_at or NOW))
        return [copy.deepcopy(o) for o in pending[:limit]]

    async def save(
        self,
        order: Order,
        events: Sequence[Envelope],
        *,
        processed_event_id: str | None = None,
        due_by: datetime | None = None,
    ) -> None:
        current = self.stored[order.order_id]
        if current.version != order.version - 1 or (
            due_by is not None
            and (
                current.status is not Status.PENDING
                or current.expires_at is None
                or current.expires_at > due_by
            )
        ):
            raise VersionConflict(current.version)
        kept = copy.deepcopy(order)
        kept.expires_at, kept.expiry_days = current.expires_at, current.expiry_days
        self.stored[order.order_id] = kept
        self.events += events

    async def schedule(
        self, order_id: str, *, expires_at: datetime, days: int, was_days: int | None
    ) -> bool:
        order = self.stored[order_id]
        if order.status is not Status.PENDING or order.expiry_days != was_days:
            return False
        order.expires_at, order.expiry_days = expires_at, days
        return True

    async def move_deadlines(self, seller_id: str, *, from_days: int, to_days: int) -> int:
        self.log.append(f"move {from_days}->{to_days}")
        moved = 0
        for order in self.stored.values():
            if (
                order.seller_id == seller_id
                and order.status is Status.PENDING
                and order.expiry_days == from_days
                and order.expires_at is not None
            ):
                order.expires_at += timedelta(days=to_days - from_days)
                order.expiry_days = to_days
                moved += 1
        return moved


@dataclass
class FakeSettings:
    chosen: dict[str, SellerSettings] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    async def get(self, seller_id: str) -> SellerSettings:
        return self.chosen.get(seller_id, SellerSettings())

    async def save(self, seller_id: str, settings: SellerSettings) -> None:
        self.log.append(f"save {settings.pending_order_expiry_days}")
        self.chosen[seller_id] = settings


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


def sweeper(orders: FakeOrders, settings: FakeSettings, clock: Clock) -> ExpirySweep:
    return ExpirySweep(
        orders=orders,  # type: ignore[arg-type]  # the fake has what the sweep uses
        seller_settings=settings,
        clock=clock,
    )


def commands(orders: FakeOrders, settings: FakeSettings, clock: Clock) -> SellerCommands:
    return SellerCommands(
        orders=orders,  # type: ignore[arg-type]  # the fake has what a settings change uses
        customers=None,  # type: ignore[arg-type]
        seller_settings=settings,
        clock=clock,
    )


def waiting(days: int, *, order_id: str | None = None) -> Order:
    order = new_order(**({"order_id": order_id} if order_id else {}))
    order.expires_at, order.expiry_days = deadline(order.placed_at, days), days
    return order


async def test_due_orders_expire_once_with_their_event_and_the_rest_wait() -> None:
    orders, settings, clock = FakeOrders(), FakeSettings(), Clock()
    settings.chosen["seller-1"] = SellerSettings(pending_order_expiry_days=3)
    due, later = waiting(3), waiting(3)
    later.expires_at = (later.expires_at or NOW) + timedelta(hours=1)
    orders.add(due)
    orders.add(later)
    sweep = sweeper(orders, settings, clock)
    clock.now = due.expires_at or NOW

    page = await sweep.expire_due(limit=10)

    assert page.outcomes == [Expiry.EXPIRED]
    assert page.oldest_due == due.expires_at and not page.full
    assert orders.stored[due.order_id].status is Status.EXPIRED
    assert orders.stored[later.order_id].status is Status.PENDING
    [event] = orders.events
    assert isinstance(event, OrderExpired)
    assert (event.data.order.status, event.data.expires_at) == ("expired", due.expires_at)
    assert (await sweep.expire_due(limit=10)).outcomes == []


async def test_an_order_with_a_stale_window_is_judged_by_the_sellers_window() -> None:
    orders, settings, clock = FakeOrders(), FakeSettings(), Clock()
    settings.chosen["seller-1"] = SellerSettings(pending_order_expiry_days=10)
    raced, legacy = waiting(2), waiting(2)
    legacy.expires_at = legacy.expiry_days = None
    orders.add(raced)
    orders.add(legacy)
    clock.now = raced.placed_at + timedelta(days=3)

    page = await sweeper(orders, settings, clock).expire_due(limit=10)

    assert sorted(page.outcomes) == [Expiry.RESCHEDULED, Expiry.RESCHEDULED]
    for order in orders.stored.values():
        assert (order.expires_at, order.expiry_days) == (deadline(order.placed_at, 10), 10)


async def test_a_new_window_moves_deadlines_before_it_is_stored_and_again_after() -> None:
    orders, settings, clock = FakeOrders(), FakeSettings(), Clock()
    log: list[str] = []
    orders.log = settings.log = log
    order = waiting(14)
    orders.add(order)

    chosen = await commands(orders, settings, clock).update_settings(
        "seller-1", buyer_access_requires_approval=None, pending_order_expiry_days=3
    )

    assert chosen == SellerSettings(
        buyer_access_requires_approval=True, pending_order_expiry_days=3
    )
    assert log == ["move 14->3", "save 3", "move 14->3"]
    assert orders.stored[order.order_id].expires_at == deadline(order.placed_at, 3)
    log.clear()
    await commands(orders, settings, clock).update_settings(
        "seller-1", buyer_access_requires_approval=False, pending_order_expiry_days=None
    )
    assert log == ["save 3"]  # the window did not change: nothing moves

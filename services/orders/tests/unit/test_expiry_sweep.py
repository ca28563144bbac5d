"""The expiry sweep and the seller's window, on fakes: what expires, what moves, what is told."""

from __future__ import annotations

from datetime import timedelta

from juniper_shared.contracts.events import OrderExpired
from orders.application.commands import SellerCommands
from orders.application.expiry import Expiry, ExpirySweep
from orders.domain.expiry import SellerSettings, deadline
from orders.domain.order import Order, Status

from .fakes import Clock, FakeOrders, FakeSettings
from .test_order_domain import NOW, new_order


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

"""A preview waiting for the read model is handed the snapshot by the consumer, or times out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from invoicing.application.catch_up import OrderVersions
from invoicing.domain.order import InvoiceableOrder


def order(version: int, order_id: str = "ord-1") -> InvoiceableOrder:
    return InvoiceableOrder(
        order_id=order_id,
        seller_id="seller-1",
        status="approved",
        version=version,
        currency="USD",
        placed_at=datetime(2026, 11, 26, tzinfo=UTC),
        buyer={},
        lines=(),
        shipping_address={},
        billing_address={},
        payment_method={},
    )


async def test_a_waiter_gets_the_first_snapshot_at_or_above_its_version() -> None:
    versions = OrderVersions()
    waiting = asyncio.create_task(versions.wait("ord-1", 3, timeout=5))
    await asyncio.sleep(0)
    versions.seen([order(2), order(9, "ord-other")])  # older, and another order: not yet
    await asyncio.sleep(0)
    assert not waiting.done()
    versions.seen([order(4)])
    assert (await waiting) == order(4)


async def test_a_waiter_nobody_wakes_gets_none_and_leaves_nothing_behind() -> None:
    versions = OrderVersions()
    assert await versions.wait("ord-1", 3, timeout=0.01) is None
    versions.seen([order(5)])  # nobody waits any more: nothing to wake, nothing kept
    assert versions._waiting == {}


async def test_a_waiter_that_comes_just_after_its_version_was_seen_gets_it_at_once() -> None:
    # The preview read the database a moment before the consumer stored version 4.
    versions = OrderVersions()
    versions.seen([order(4)])
    versions.seen([order(3)])  # a stale redelivery does not hide the newer one
    assert (await versions.wait("ord-1", 4, timeout=60)) == order(4)
    assert (await versions.wait("ord-1", 2, timeout=60)) == order(4)


async def test_only_the_most_recent_orders_are_remembered() -> None:
    versions = OrderVersions()
    versions.seen([order(1, f"ord-{n}") for n in range(OrderVersions.RECENT + 1)])
    assert (await versions.wait(f"ord-{OrderVersions.RECENT}", 1, timeout=60)) is not None
    assert (await versions.wait("ord-0", 1, timeout=0.01)) is None  # forgotten: it waits


def test_an_order_is_followed_once_a_version_of_it_was_seen_until_it_is_forgotten() -> None:
    versions = OrderVersions()
    assert not versions.follows("ord-0")
    versions.seen([order(1, "ord-0")])
    assert versions.follows("ord-0")
    versions.seen([order(1, f"ord-{n}") for n in range(1, OrderVersions.RECENT + 1)])
    assert not versions.follows("ord-0")

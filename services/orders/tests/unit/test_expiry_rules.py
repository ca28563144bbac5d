"""When a pending order expires, and what an expiry leaves possible."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from orders.domain.errors import InvalidState
from orders.domain.expiry import deadline
from orders.domain.order import Line, Order, Status

from .test_order_domain import new_order

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def waiting(days: int = 14) -> Order:
    order = new_order()
    order.expires_at, order.expiry_days = deadline(order.placed_at, days), days
    return order


def test_a_pending_order_expires_at_its_deadline_not_a_moment_before() -> None:
    order = waiting()
    assert order.expires_at is not None
    with pytest.raises(InvalidState):
        order.expire(now=order.expires_at - timedelta(milliseconds=1))
    order.expire(now=order.expires_at)
    assert order.status is Status.EXPIRED
    assert order.history[-1].type == "expired"


def test_only_a_pending_order_expires() -> None:
    order = waiting()
    order.accept(now=NOW, customer_id="cus-1")
    assert order.expires_at is not None
    with pytest.raises(InvalidState):
        order.expire(now=order.expires_at + timedelta(days=1))


def test_nothing_happens_to_an_expired_order() -> None:
    order = waiting()
    assert order.expires_at is not None
    order.expire(now=order.expires_at)
    with pytest.raises(InvalidState):
        order.accept(now=NOW, customer_id=None)
    with pytest.raises(InvalidState):
        order.reject(now=NOW, reason="other", message="")
    with pytest.raises(InvalidState):
        order.split(["L1"], now=NOW)


def test_a_split_keeps_a_pending_orders_deadline_and_starts_the_window_for_an_approved_one() -> (
    None
):
    pending = waiting(days=3)
    pending.lines.append(Line("L9", "SKU-9", "Extra", 100, 1))
    child = pending.split(["L9"], now=NOW)
    assert (child.expires_at, child.expiry_days) == (pending.expires_at, 3)

    approved = waiting(days=3)
    approved.lines.append(Line("L9", "SKU-9", "Extra", 100, 1))
    approved.accept(now=NOW, customer_id="cus-1")
    child = approved.split(["L9"], now=NOW)
    assert child.status is Status.PENDING
    assert child.expires_at == deadline(NOW, 3)

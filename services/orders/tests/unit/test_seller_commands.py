"""A seller's accept and edits, on fakes: what is stored, which event is told, which customer the
order belongs to, and what is refused, with no I/O (the HTTP and database paths are the
integration suite's)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import pytest
from juniper_shared.contracts.events import OrderAccepted, OrderUpdated
from orders.application.commands import (
    CustomerChoice,
    NewCustomer,
    PreconditionFailed,
    SellerCommands,
)
from orders.domain.errors import CustomerRequired, InvalidState, NotFound
from orders.domain.order import Order, Status

from .fakes import FakeCustomers, FakeOrders, FakeSettings
from .test_order_domain import NOW, new_order, three_line_order


@dataclass
class Seller:
    orders: FakeOrders = field(default_factory=FakeOrders)
    customers: FakeCustomers = field(default_factory=FakeCustomers)

    @property
    def commands(self) -> SellerCommands:
        return SellerCommands(
            orders=self.orders,  # type: ignore[arg-type]  # the fake has what commands use
            customers=self.customers,  # type: ignore[arg-type]
            seller_settings=FakeSettings(),
            clock=lambda: NOW,
        )


def pending(seller: Seller, **overrides: object) -> Order:
    order = new_order(**overrides)
    seller.orders.add(order)
    return order


async def test_accepting_a_linked_buyer_stores_the_order_approved_with_one_event() -> None:
    seller = Seller()
    seller.customers.links[("seller-1", "buyer-1")] = "cus-known"
    order = pending(seller)

    accepted = await seller.commands.accept(
        "seller-1", order.order_id, if_match=order.version, customer=None
    )

    stored = seller.orders.stored[order.order_id]
    assert (stored.status, stored.customer_id, stored.version) == (
        Status.APPROVED,
        "cus-known",
        order.version + 1,
    )
    assert accepted.version == stored.version
    [event] = seller.orders.events
    assert isinstance(event, OrderAccepted)
    assert event.data.customer_created is False
    assert event.data.order.version == stored.version
    assert seller.customers.stored == {}


async def test_accepting_an_unknown_buyer_creates_the_customer_and_links_the_buyer() -> None:
    seller = Seller()
    order = pending(seller)
    choice = CustomerChoice(create=NewCustomer(name="Corner Shop", email="shop@example.com"))

    await seller.commands.accept("seller-1", order.order_id, if_match=None, customer=choice)

    customer_id = f"cus-{order.order_id}"  # retried accepts find the same customer
    assert seller.customers.stored[customer_id].buyer_ids == ["buyer-1"]
    assert seller.customers.links == {("seller-1", "buyer-1"): customer_id}
    assert seller.orders.stored[order.order_id].customer_id == customer_id
    [event] = seller.orders.events
    assert isinstance(event, OrderAccepted) and event.data.customer_created is True


async def test_an_unknown_buyer_without_a_choice_leaves_the_order_pending_and_untold() -> None:
    seller = Seller()
    order = pending(seller)

    with pytest.raises(CustomerRequired):
        await seller.commands.accept("seller-1", order.order_id, if_match=None, customer=None)

    assert seller.orders.stored[order.order_id].status is Status.PENDING
    assert (seller.orders.events, seller.customers.stored) == ([], {})


async def test_another_sellers_order_is_not_found_and_unchanged() -> None:
    seller = Seller()
    order = pending(seller)

    with pytest.raises(NotFound):
        await seller.commands.accept("seller-2", order.order_id, if_match=None, customer=None)

    assert seller.orders.stored[order.order_id].status is Status.PENDING
    assert seller.orders.events == []


async def test_a_stale_if_match_is_refused_with_the_current_version() -> None:
    seller = Seller()
    seller.customers.links[("seller-1", "buyer-1")] = "cus-known"
    order = pending(seller)

    with pytest.raises(PreconditionFailed) as refused:
        await seller.commands.accept(
            "seller-1", order.order_id, if_match=order.version - 1, customer=None
        )

    assert refused.value.current == order.version
    assert seller.orders.stored[order.order_id].status is Status.PENDING


async def test_an_outdated_kept_copy_never_decides_the_stored_order_does() -> None:
    # Another replica changed the order after this process kept its copy; the seller names
    # the version they saw (the stored one), which the copy does not have.
    seller = Seller()
    order = three_line_order()
    seller.orders.add(order)
    seller.orders.kept[order.order_id] = copy.deepcopy(order)
    newer = seller.orders.stored[order.order_id]
    newer.version += 1

    await seller.commands.change_quantities(
        "seller-1", order.order_id, if_match=newer.version, quantities={"L1": 2}
    )

    stored = seller.orders.stored[order.order_id]
    assert (stored.version, stored.lines[0].quantity) == (newer.version + 1, 2)
    [event] = seller.orders.events
    assert isinstance(event, OrderUpdated)
    assert event.data.changed_line_ids == ["L1"]


async def test_a_change_without_if_match_that_loses_a_race_is_applied_on_the_fresh_order() -> None:
    seller = Seller()
    order = three_line_order()
    seller.orders.add(order)
    seller.orders.races_lost = 1

    await seller.commands.remove_items("seller-1", order.order_id, if_match=None, line_ids=["L3"])

    stored = seller.orders.stored[order.order_id]
    assert [line.line_id for line in stored.lines] == ["L1", "L2"]
    assert stored.version == order.version + 2  # the other writer's version, then ours
    assert len(seller.orders.events) == 1


async def test_an_expired_order_cannot_be_accepted_whatever_version_the_seller_saw() -> None:
    seller = Seller()
    seller.customers.links[("seller-1", "buyer-1")] = "cus-known"
    order = new_order()
    order.status = Status.EXPIRED
    seller.orders.add(order)

    with pytest.raises(InvalidState):
        await seller.commands.accept("seller-1", order.order_id, if_match=0, customer=None)

    assert seller.orders.events == []

"""What the handlers need from the outside world."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from juniper_shared.contracts.events import Envelope

from orders.domain.customer import Customer
from orders.domain.order import Order


class VersionConflict(Exception):
    """The stored aggregate changed since it was read."""

    def __init__(self, current: int | None) -> None:
        super().__init__(f"current version is {current}")
        self.current = current


Row = TypeVar("Row")


@dataclass(frozen=True)
class Page(Generic[Row]):
    """One page of a seller's list, and how many rows the whole list has."""

    rows: list[Row]
    total_count: int


class OrderRepository(Protocol):
    async def get(self, order_id: str, *, recent: bool = False) -> Order | None:
        """The stored order. With `recent`, this process's copy of what it stored or read last
        when it has one: possibly outdated by another replica, so only for a change whose
        guarded `save` checks it."""

    async def save(
        self,
        order: Order,
        events: Sequence[Envelope],
        *,
        processed_event_id: str | None = None,
    ) -> None:
        """Store the order (guarded by the version it was read at) and its events in one write."""

    async def add_placed(self, orders: Sequence[Order]) -> list[str]:
        """Insert new orders; those already there are left alone. Returns the new ids."""

    async def add_split(self, child: Order) -> None:
        """Store an order split off another, not yet visible until `reveal` (the parent commits first)."""

    async def reveal(self, order_id: str) -> None: ...

    async def page(
        self, seller_id: str, *, status: str | None, page: int, page_size: int
    ) -> Page[Order]: ...


class CustomerRepository(Protocol):
    async def get(self, customer_id: str) -> Customer | None: ...

    async def save(self, customer: Customer, *, new: bool) -> None: ...

    async def page(self, seller_id: str, *, page: int, page_size: int) -> Page[Customer]:
        """The seller's customers by customer id, one page."""
        ...

    async def linked_customer(self, seller_id: str, buyer_id: str) -> str | None:
        """The customer a buyer is linked to at this seller, if any."""

    async def link_buyer(self, seller_id: str, buyer_id: str, customer_id: str) -> None: ...


class SellerSettingsRepository(Protocol):
    async def requires_approval(self, seller_id: str) -> bool:
        """'Buyer Access Requires Approval'; a seller who never set it is gated."""

    async def set_requires_approval(self, seller_id: str, value: bool) -> None: ...


class EventSink(Protocol):
    async def publish(self, events: Sequence[Envelope]) -> None:
        """Publish now and return once Kafka has every event."""

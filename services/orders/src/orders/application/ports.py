"""What the handlers need from the outside world."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from juniper_shared.contracts.events import Envelope

from orders.domain.customer import Customer
from orders.domain.expiry import SellerSettings
from orders.domain.order import Order

Clock = Callable[[], datetime]


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


@dataclass(frozen=True)
class Stored:
    order: Order
    applied_events: frozenset[str]
    """Ids of the consumed events this order already reflects."""


@dataclass(frozen=True)
class Reaction:
    """An order changed by consumed events: stored guarded by its version before them."""

    order: Order
    event_ids: list[str]


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
        due_by: datetime | None = None,
    ) -> None:
        """Store the order (guarded by the version it was read at) and its events in one write.
        With `due_by` (an expiry), also guarded by the stored order being pending with a
        deadline no later than that."""

    async def get_many(self, order_ids: Sequence[str], *, recent: bool) -> dict[str, Stored]:
        """The stored orders among `order_ids`, each with the ids of the events applied to it,
        in one read (`recent`: as for `get`)."""

    async def save_many(self, changes: Sequence[Reaction]) -> set[str]:
        """Store the changed orders in one bulk write, each guarded by the version it was read
        at and marked with the events applied to it. Returns the ids of the orders another
        write changed meanwhile (nothing of theirs is stored)."""

    async def add_placed(self, orders: Sequence[Order]) -> list[str]:
        """Insert new orders; those already there are left alone. Returns the new ids."""

    async def pending_by_deadline(self, limit: int) -> list[Order]:
        """The first `limit` pending orders, earliest deadline first (those without one first)."""

    async def schedule(
        self, order_id: str, *, expires_at: datetime, days: int, was_days: int | None
    ) -> bool:
        """Set a pending order's deadline, if its window is still `was_days`."""

    async def move_deadlines(self, seller_id: str, *, from_days: int, to_days: int) -> int:
        """Shift the deadline of every pending order of the seller computed with `from_days`
        by the difference, and mark it computed with `to_days`. Returns how many moved."""

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
    async def get(self, seller_id: str) -> SellerSettings:
        """The seller's settings; defaults for a seller who never set them."""

    async def save(self, seller_id: str, settings: SellerSettings) -> None: ...


class Lease(Protocol):
    """The right to run the one job of a deployment that no two replicas may run at once."""

    @property
    def held(self) -> bool:
        """Whether this replica held the lease at its last `hold`."""

    async def hold(self) -> bool:
        """Take the lease if it is free or lapsed, or renew it if this replica holds it."""

    async def release(self) -> None:
        """Give the lease up now, so another replica takes over without waiting for it to lapse."""


class EventSink(Protocol):
    async def publish(self, events: Sequence[Envelope]) -> None:
        """Publish now and return once Kafka has every event."""

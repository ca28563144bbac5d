"""In-memory stand-ins for the orders service's ports, for tests of the application layer.

They keep what the MongoDB adapters keep (stored orders, this process's copies, customers and
links, settings) and refuse what they refuse (a write guarded by a version that is no longer
stored), with no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from juniper_shared.contracts.events import Envelope
from orders.application.ports import VersionConflict
from orders.domain.customer import Customer
from orders.domain.expiry import SellerSettings
from orders.domain.order import Order, Status

from .test_order_domain import NOW


@dataclass
class FakeOrders:
    """Stored orders, this process's kept copies (which another replica may have outdated),
    and the events stored with each change."""

    stored: dict[str, Order] = field(default_factory=dict)
    kept: dict[str, Order] = field(default_factory=dict)
    events: list[Envelope] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    races_lost: int = 0
    """Writes that another writer beats first (it stores a version of its own)."""

    def add(self, order: Order) -> None:
        self.stored[order.order_id] = copy.deepcopy(order)

    async def get(self, order_id: str, *, recent: bool = False) -> Order | None:
        source = self.kept if recent and order_id in self.kept else self.stored
        order = source.get(order_id)
        return copy.deepcopy(order) if order is not None else None

    async def save(
        self,
        order: Order,
        events: Sequence[Envelope],
        *,
        processed_event_id: str | None = None,
        due_by: datetime | None = None,
    ) -> None:
        current = self.stored[order.order_id]
        if self.races_lost:
            self.races_lost -= 1
            current.version += 1
        if current.version != order.version - 1 or (
            due_by is not None
            and (
                current.status is not Status.PENDING
                or current.expires_at is None
                or current.expires_at > due_by
            )
        ):
            raise VersionConflict(current.version)
        # The deadline is the sweeper's to schedule (`schedule`, `move_deadlines`), not a save's.
        kept = copy.deepcopy(order)
        kept.expires_at, kept.expiry_days = current.expires_at, current.expiry_days
        self.stored[order.order_id] = kept
        self.kept[order.order_id] = copy.deepcopy(kept)
        self.events += events

    async def pending_by_deadline(self, limit: int) -> list[Order]:
        pending = [o for o in self.stored.values() if o.status is Status.PENDING]
        pending.sort(key=lambda o: (o.expires_at is not None, o.expires_at or NOW))
        return [copy.deepcopy(o) for o in pending[:limit]]

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
class FakeCustomers:
    stored: dict[str, Customer] = field(default_factory=dict)
    links: dict[tuple[str, str], str] = field(default_factory=dict)

    async def get(self, customer_id: str) -> Customer | None:
        return copy.deepcopy(self.stored.get(customer_id))

    async def save(self, customer: Customer, *, new: bool) -> None:
        self.stored[customer.customer_id] = copy.deepcopy(customer)

    async def linked_customer(self, seller_id: str, buyer_id: str) -> str | None:
        return self.links.get((seller_id, buyer_id))

    async def link_buyer(self, seller_id: str, buyer_id: str, customer_id: str) -> None:
        self.links[(seller_id, buyer_id)] = customer_id


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

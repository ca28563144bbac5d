"""Placed orders in: stored once each, each one's first event out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from juniper_shared.clock import utc_now
from juniper_shared.contracts.events import (
    Envelope,
    OrderPlaced,
    OrderReceived,
    OrderReceivedData,
    OrderRejected,
    OrderRejectedData,
)

from orders.application.events import envelope, snapshot
from orders.application.ports import (
    Clock,
    CustomerRepository,
    EventSink,
    OrderRepository,
    SellerSettingsRepository,
)
from orders.domain.customer import buyer_admitted
from orders.domain.expiry import deadline
from orders.domain.order import Order, Status
from orders.domain.placing import place_order


@dataclass
class Ingestion:
    orders: OrderRepository
    customers: CustomerRepository
    seller_settings: SellerSettingsRepository
    publisher: EventSink
    clock: Clock = utc_now

    async def ingest_placed(self, placed: Sequence[OrderPlaced]) -> int:
        """Store a batch of placed orders once each and publish what happened to each.

        No outbox here: the consumer publishes before its offsets are committed, so a crash
        redelivers the batch and the events go out again with the same deterministic ids.
        Returns how many orders were new.
        """
        unique = list({event.data.order_id: event for event in placed}.values())
        sellers = {event.data.seller_id for event in unique}
        chosen = dict(
            zip(
                sellers,
                await asyncio.gather(*(self.seller_settings.get(s) for s in sellers)),
                strict=True,
            )
        )
        gated = {seller: chosen[seller].buyer_access_requires_approval for seller in sellers}
        pairs = {
            (event.data.seller_id, event.data.buyer.id)
            for event in unique
            if gated[event.data.seller_id]
        }
        linked = dict(
            zip(
                pairs,
                await asyncio.gather(*(self.customers.linked_customer(*pair) for pair in pairs)),
                strict=True,
            )
        )
        now = self.clock()
        orders: list[Order] = []
        causes: dict[str, OrderPlaced] = {}
        for event in unique:
            data = event.data
            customer_id = linked.get((data.seller_id, data.buyer.id))
            order = place_order(
                data,
                buyer_admitted=buyer_admitted(
                    requires_approval=gated[data.seller_id], buyer_linked=customer_id is not None
                ),
                now=now,
            )
            order.customer_id = customer_id
            window = chosen[data.seller_id].pending_order_expiry_days
            order.expires_at, order.expiry_days = deadline(order.placed_at, window), window
            orders.append(order)
            causes[order.order_id] = event
        # The first events are built on a worker thread while the database stores the batch:
        # a batch's stages run one after the other, so this is the one overlap it has.
        stored, first_events = await asyncio.gather(
            self.orders.add_placed(orders), asyncio.to_thread(self._placed_events, orders, causes)
        )
        new_ids = set(stored)
        # An order already stored may be a redelivery after a crash that came before its event
        # was published: publish its first event again, as it was stored, unless it moved on.
        stored_before = [
            self._placed_event(order, cause=causes[order.order_id])
            for order in await asyncio.gather(
                *(self.orders.get(o.order_id) for o in orders if o.order_id not in new_ids)
            )
            if order is not None and order.version == 1
        ]
        events = [first_events[o.order_id] for o in orders if o.order_id in new_ids]
        await self.publisher.publish(events + stored_before)
        return len(new_ids)

    def _placed_events(
        self, orders: Sequence[Order], causes: dict[str, OrderPlaced]
    ) -> dict[str, Envelope]:
        return {o.order_id: self._placed_event(o, cause=causes[o.order_id]) for o in orders}

    def _placed_event(self, order: Order, *, cause: OrderPlaced) -> Envelope:
        # Deterministic: a republished first event is recognisably the same event.
        event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"junipermarket:orders:{order.order_id}:placed")
        if order.status is Status.REJECTED:
            assert order.rejection is not None
            data: Any = OrderRejectedData(
                order=snapshot(order),
                reason=order.rejection["reason"],
                message=order.rejection["message"],
            )
            return envelope(OrderRejected, order, data, cause=cause, event_id=event_id)
        data = OrderReceivedData(order=snapshot(order))
        return envelope(OrderReceived, order, data, cause=cause, event_id=event_id)

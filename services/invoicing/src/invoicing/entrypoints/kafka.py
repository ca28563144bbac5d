"""Kafka subscribers: order snapshots in (read model), payment outcomes in."""

from __future__ import annotations

import asyncio

from faststream.kafka import KafkaBroker
from juniper_shared.contracts.common import OrderSnapshot
from juniper_shared.contracts.events import (
    Envelope,
    OrderCancelled,
    OrderEventData,
    OrderSplit,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
)
from juniper_shared.contracts.registry import ORDERS_EVENTS, PAYMENTS_EVENTS
from juniper_shared.kafka import DeadLetters, Subscription, consume_batches
from juniper_shared.settings import ServiceSettings

from invoicing.application.reactions import Reactions

GROUP_ID = "invoicing"
PAYMENT_TYPES = frozenset({"payment.succeeded", "payment.failed", "payment.refunded"})


def snapshots_of(events: list[Envelope]) -> list[OrderSnapshot]:
    """Every order snapshot a batch carries: a split carries both orders."""
    snapshots: list[OrderSnapshot] = []
    for event in events:
        if isinstance(event, OrderSplit):
            snapshots += [event.data.parent, event.data.new_order]
        elif isinstance(event.data, OrderEventData):
            snapshots.append(event.data.order)
    return snapshots


def register_subscribers(
    broker: KafkaBroker,
    reactions: Reactions,
    dead_letters: DeadLetters,
    settings: ServiceSettings,
    *,
    orders_events_lag: float = 0.0,
) -> None:
    async def on_orders_events(events: list[Envelope]) -> None:
        if orders_events_lag:
            await asyncio.sleep(orders_events_lag)  # test-only: a lagging consumer
        # The read model first: a confirm after this sees the order cancelled and is refused;
        # then the invoice of a cancelled order is voided (a confirm that got in before it).
        await reactions.on_order_snapshots(snapshots_of(events))
        await reactions.on_orders_cancelled([e for e in events if isinstance(e, OrderCancelled)])

    async def on_payments_events(events: list[Envelope]) -> None:
        await reactions.on_payment_events(
            [
                event
                for event in events
                if isinstance(event, PaymentSucceeded | PaymentFailed | PaymentRefunded)
            ]
        )

    consume_batches(
        broker,
        [
            Subscription(ORDERS_EVENTS, on_orders_events),
            Subscription(PAYMENTS_EVENTS, on_payments_events, handles=PAYMENT_TYPES),
        ],
        group_id=GROUP_ID,
        settings=settings,
        dead_letters=dead_letters,
    )

"""Kafka subscribers: order and invoice news in, emails out."""

from __future__ import annotations

from faststream.kafka import KafkaBroker
from juniper_shared.contracts.events import Envelope
from juniper_shared.contracts.registry import INVOICES_EVENTS, ORDERS_EVENTS
from juniper_shared.kafka import DeadLetters, Subscription, consume_batches
from juniper_shared.settings import ServiceSettings

from notifications.application.handlers import NotificationHandlers
from notifications.domain.notices import EMAILED_TYPES

GROUP_ID = "notifications"
ORDER_TYPES = EMAILED_TYPES & frozenset(ORDERS_EVENTS.event_types)
INVOICE_TYPES = EMAILED_TYPES & frozenset(INVOICES_EVENTS.event_types)


def register_subscribers(
    broker: KafkaBroker,
    handlers: NotificationHandlers,
    dead_letters: DeadLetters,
    settings: ServiceSettings,
) -> None:
    async def on_events(events: list[Envelope]) -> None:
        await handlers.notify(events)

    consume_batches(
        broker,
        [
            Subscription(ORDERS_EVENTS, on_events, handles=ORDER_TYPES),
            Subscription(INVOICES_EVENTS, on_events, handles=INVOICE_TYPES),
        ],
        group_id=GROUP_ID,
        settings=settings,
        dead_letters=dead_letters,
    )

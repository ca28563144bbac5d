"""Kafka subscribers: order and invoice news in, emails out."""

from __future__ import annotations

from faststream.kafka import KafkaBroker
from juniper_shared.contracts.events import Envelope
from juniper_shared.contracts.registry import INVOICES_EVENTS, ORDERS_EVENTS
from juniper_shared.kafka import DeadLetters, consume_batches
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

    for topic, types in ((ORDERS_EVENTS, ORDER_TYPES), (INVOICES_EVENTS, INVOICE_TYPES)):
        consume_batches(
            broker,
            topic,
            on_events,
            group_id=GROUP_ID,
            settings=settings,
            dead_letters=dead_letters,
            handles=types,
        )

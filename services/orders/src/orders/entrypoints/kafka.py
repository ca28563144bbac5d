"""Kafka subscribers: placed orders in, invoice news in."""

from __future__ import annotations

from faststream.kafka import KafkaBroker
from juniper_shared.contracts.events import (
    Envelope,
    InvoiceIssued,
    InvoicePaid,
    InvoicePaymentFailed,
    InvoiceVoided,
    OrderPlaced,
)
from juniper_shared.contracts.registry import INVOICES_EVENTS, ORDERS_PLACED
from juniper_shared.kafka import DeadLetters, Subscription, consume_batches
from juniper_shared.settings import ServiceSettings

from orders.application.ingestion import Ingestion
from orders.application.invoice_events import InvoiceEvents

GROUP_ID = "orders"
INVOICE_TYPES = frozenset(
    {"invoice.issued", "invoice.paid", "invoice.payment_failed", "invoice.voided"}
)


def register_subscribers(
    broker: KafkaBroker,
    ingestion: Ingestion,
    invoice_events: InvoiceEvents,
    dead_letters: DeadLetters,
    settings: ServiceSettings,
) -> None:
    async def on_orders_placed(events: list[Envelope]) -> None:
        await ingestion.ingest_placed([event for event in events if isinstance(event, OrderPlaced)])

    async def on_invoices_events(events: list[Envelope]) -> None:
        await invoice_events.on_invoice_events(
            [
                event
                for event in events
                if isinstance(
                    event, InvoiceIssued | InvoicePaid | InvoicePaymentFailed | InvoiceVoided
                )
            ]
        )

    consume_batches(
        broker,
        [
            Subscription(ORDERS_PLACED, on_orders_placed),
            Subscription(INVOICES_EVENTS, on_invoices_events, handles=INVOICE_TYPES),
        ],
        group_id=GROUP_ID,
        settings=settings,
        dead_letters=dead_letters,
    )

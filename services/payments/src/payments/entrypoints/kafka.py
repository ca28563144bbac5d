"""Kafka subscribers: cards from placed orders and splits (forgotten on expiry), issued invoices
to charge."""

from __future__ import annotations

from faststream.kafka import KafkaBroker
from juniper_shared.contracts.events import (
    Envelope,
    InvoiceIssued,
    InvoiceVoided,
    OrderExpired,
    OrderPlaced,
    OrderSplit,
)
from juniper_shared.contracts.registry import INVOICES_EVENTS, ORDERS_EVENTS, ORDERS_PLACED
from juniper_shared.kafka import DeadLetters, Subscription, consume_batches
from juniper_shared.settings import ServiceSettings

from payments.application.cards import CardKeeping
from payments.application.handlers import PaymentsHandlers

GROUP_ID = "payments"
INVOICE_TYPES = frozenset({"invoice.issued", "invoice.voided"})
ORDER_TYPES = frozenset({"order.split", "order.expired"})


def register_subscribers(
    broker: KafkaBroker,
    cards: CardKeeping,
    handlers: PaymentsHandlers,
    dead_letters: DeadLetters,
    settings: ServiceSettings,
) -> None:
    async def on_orders_placed(events: list[Envelope]) -> None:
        await cards.record_placed_cards([e for e in events if isinstance(e, OrderPlaced)])

    async def on_orders_events(events: list[Envelope]) -> None:
        await cards.record_splits([e for e in events if isinstance(e, OrderSplit)])
        await cards.forget_expired([e for e in events if isinstance(e, OrderExpired)])

    async def on_invoices_events(events: list[Envelope]) -> None:
        # Issued before voided: one invoice's events come in order on its partition.
        voided = [e for e in events if isinstance(e, InvoiceVoided)]
        await handlers.on_invoices_issued(
            [e for e in events if isinstance(e, InvoiceIssued)],
            voided={e.data.invoice_id for e in voided},
        )
        await handlers.on_invoices_voided(voided)

    consume_batches(
        broker,
        [
            # Cards first: a split or an invoice in the same batch finds its card stored.
            Subscription(ORDERS_PLACED, on_orders_placed),
            Subscription(ORDERS_EVENTS, on_orders_events, handles=ORDER_TYPES),
            Subscription(INVOICES_EVENTS, on_invoices_events, handles=INVOICE_TYPES),
        ],
        group_id=GROUP_ID,
        settings=settings,
        dead_letters=dead_letters,
    )

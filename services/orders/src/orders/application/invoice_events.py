"""What invoicing tells orders: the All Orders row's invoice link and payment status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from juniper_shared.batching import apply_per_key
from juniper_shared.clock import utc_now
from juniper_shared.contracts.events import (
    InvoiceIssued,
    InvoicePaid,
    InvoicePaymentFailed,
    InvoiceVoided,
)
from juniper_shared.contracts.registry import ForgedEvent
from juniper_shared.errors import RetryLater
from juniper_shared.retries import retry_on_conflict

from orders.application.commands import UNGUARDED_RETRIES
from orders.application.ports import (
    Clock,
    OrderRepository,
    VersionConflict,
)
from orders.domain.order import InvoiceLink, PaymentStatus

InvoiceEvent = InvoiceIssued | InvoicePaid | InvoicePaymentFailed | InvoiceVoided


@dataclass
class InvoiceEvents:
    orders: OrderRepository
    clock: Clock = utc_now

    async def on_invoice_events(self, events: Sequence[InvoiceEvent]) -> None:
        """Apply a batch: one order's events in their order, different orders at once."""
        await apply_per_key(events, lambda event: event.data.order_id, self.on_invoice_event)

    async def on_invoice_event(self, event: InvoiceEvent) -> None:
        """Keep the All Orders row's invoice link and payment status current (idempotent)."""
        try:
            # A seller edit or this very event may get there first: look again.
            await retry_on_conflict(
                lambda number: self._apply_invoice_event(event, recent=number == 1),
                conflict=VersionConflict,
                attempts=UNGUARDED_RETRIES + 2,
            )
        except VersionConflict:
            raise RetryLater(
                f"order {event.data.order_id} kept changing; the batch will be retried"
            ) from None

    async def _apply_invoice_event(self, event: InvoiceEvent, *, recent: bool) -> None:
        # The first try from the copy this process stored last (the guarded save checks it).
        order = await self.orders.get(event.data.order_id, recent=recent)
        if order is None:
            return  # not ours: an invoice for an order this service never stored
        if order.seller_id != event.seller_id:
            raise ForgedEvent(
                f"{event.type} of seller {event.seller_id!r} names order "
                f"{order.order_id} of another seller"
            )
        now = self.clock()
        if isinstance(event, InvoiceIssued):
            link = InvoiceLink(
                invoice_id=event.data.invoice_id,
                number=event.data.number,
                status="issued",
                url=event.data.url,
            )
            order.link_invoice(link, now=now)
        elif isinstance(event, InvoiceVoided):
            link = InvoiceLink(
                invoice_id=event.data.invoice_id,
                number=event.data.number or "",
                status="void",
                url=event.data.url,
            )
            order.void_invoice(link, now=now)
        elif isinstance(event, InvoicePaid):
            order.record_payment(PaymentStatus.PAID, now=now)
        else:
            order.record_payment(PaymentStatus.FAILED, now=now, reason=event.data.reason)
        order.version += 1
        await self.orders.save(order, [], processed_event_id=str(event.event_id))

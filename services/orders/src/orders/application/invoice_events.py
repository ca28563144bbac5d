"""What invoicing tells orders: the All Orders row's invoice link and payment status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from juniper_shared.clock import utc_now
from juniper_shared.contracts.events import (
    InvoiceIssued,
    InvoicePaid,
    InvoicePaymentFailed,
    InvoiceVoided,
)
from juniper_shared.contracts.registry import ForgedEvent
from juniper_shared.errors import RetryLater

from orders.application.commands import UNGUARDED_RETRIES
from orders.application.ports import Clock, OrderRepository, Reaction, Stored
from orders.domain.order import InvoiceLink, PaymentStatus

InvoiceEvent = InvoiceIssued | InvoicePaid | InvoicePaymentFailed | InvoiceVoided


@dataclass
class InvoiceEvents:
    orders: OrderRepository
    clock: Clock = utc_now

    async def on_invoice_events(self, events: Sequence[InvoiceEvent]) -> None:
        """Keep the All Orders rows' invoice links and payment statuses current (idempotent).

        The batch is one read and one bulk write: each order's new events are applied in their
        order to one copy of it, and each order is stored guarded by the version it was read at.
        Orders another write changed meanwhile (a seller's edit) are read and applied again."""
        waiting = list(events)
        for attempt in range(UNGUARDED_RETRIES + 2):
            by_order: dict[str, list[InvoiceEvent]] = {}
            for event in waiting:
                by_order.setdefault(event.data.order_id, []).append(event)
            # The first try from the copies this process stored last (the guards check them).
            stored = await self.orders.get_many(list(by_order), recent=attempt == 0)
            changes = [
                change
                for order_id, order_events in by_order.items()
                if order_id in stored  # else not ours: an order this service never stored
                and (change := self._react(stored[order_id], order_events)) is not None
            ]
            conflicted = await self.orders.save_many(changes)
            waiting = [event for event in waiting if event.data.order_id in conflicted]
            if not waiting:
                return
        raise RetryLater(f"{len(waiting)} orders kept changing; the batch will be retried")

    def _react(self, stored: Stored, events: list[InvoiceEvent]) -> Reaction | None:
        order = stored.order
        fresh = [event for event in events if str(event.event_id) not in stored.applied_events]
        if not fresh:
            return None
        now = self.clock()
        for event in fresh:
            if order.seller_id != event.seller_id:
                raise ForgedEvent(
                    f"{event.type} of seller {event.seller_id!r} names order "
                    f"{order.order_id} of another seller"
                )
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
        return Reaction(order, [str(event.event_id) for event in fresh])

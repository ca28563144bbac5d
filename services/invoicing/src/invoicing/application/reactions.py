"""What other services tell invoicing: order snapshots and cancels, payment outcomes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from juniper_shared.batching import apply_per_key
from juniper_shared.clock import utc_now
from juniper_shared.contracts.common import OrderSnapshot
from juniper_shared.contracts.events import (
    Envelope,
    OrderCancelled,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
)
from juniper_shared.contracts.money import to_minor
from juniper_shared.contracts.registry import ForgedEvent
from juniper_shared.errors import RetryLater
from juniper_shared.inbox import KEEP
from juniper_shared.retries import retry_on_conflict

from invoicing.application.catch_up import OrderVersions
from invoicing.application.events import (
    document_url,
    order_from_snapshot,
    paid_event,
    payment_failed_event,
    voided_event,
)
from invoicing.application.ports import (
    Clock,
    InvoiceRepository,
    OrderBook,
    VersionConflict,
)
from invoicing.application.stored import WRITE_RETRIES, save_next
from invoicing.domain.invoice import (
    Invoice,
    PaymentFailure,
    invoice_id_for,
)
from invoicing.domain.order import newest
from invoicing.metrics import (
    INVOICE_PAYMENTS,
    INVOICES_VOIDED,
)

log = logging.getLogger(__name__)


PaymentEvent = PaymentSucceeded | PaymentFailed | PaymentRefunded


@dataclass
class Reactions:
    orders: OrderBook
    invoices: InvoiceRepository
    base_url: str
    clock: Clock = utc_now
    versions: OrderVersions = field(default_factory=OrderVersions)

    async def on_order_snapshots(self, snapshots: Sequence[OrderSnapshot]) -> int:
        """Keep the read model of invoiceable orders current; stale snapshots change nothing."""
        orders = newest(order_from_snapshot(s) for s in snapshots)
        stored = await self.orders.apply(orders)
        self.versions.seen(orders)
        return stored

    async def on_orders_cancelled(self, cancelled: Sequence[OrderCancelled]) -> None:
        """Void the invoice of each cancelled order (compensation for a confirm that won the
        race with the cancel); an issued one tells the buyer and payments, a draft nobody."""
        unique = {event.data.order.order_id: event for event in cancelled}
        await apply_per_key(unique.values(), lambda event: event.data.order.order_id, self._void)

    async def _void(self, event: OrderCancelled) -> None:
        event_id = str(event.event_id)
        invoice_id = invoice_id_for(event.data.order.order_id)

        async def void(number: int) -> None:
            # The first try from this process's copy (the guarded save checks it).
            invoice = await self.invoices.get(invoice_id, recent=number == 1)
            if invoice is None:
                return  # never previewed: nothing to void
            check_names_its_own(invoice, event, order_id=event.data.order.order_id)
            if event_id in invoice.processed_events or not invoice.void(now=self.clock()):
                return  # already void (a redelivered cancel does nothing more)
            outgoing: list[Envelope] = []
            if invoice.buyer_was_told:
                outgoing.append(
                    voided_event(invoice, url=document_url(self.base_url, invoice_id), cause=event)
                )
            invoice.processed_events = [*invoice.processed_events, event_id][-KEEP:]
            await save_next(self.invoices, invoice, outgoing)
            INVOICES_VOIDED.labels("issued" if outgoing else "draft").inc()
            log.info("voided invoice %s (%s): order cancelled", invoice_id, invoice.number)

        try:
            await retry_on_conflict(void, conflict=VersionConflict, attempts=WRITE_RETRIES)
        except VersionConflict:
            raise RetryLater(f"invoice {invoice_id} kept changing; batch will be retried") from None

    async def on_payment_events(self, events: Sequence[PaymentEvent]) -> None:
        """Mark invoices paid, failed or refunded, once per event, in the events' order.

        The batch is one read and one bulk write: each invoice's new events are applied to one
        copy of it, stored one version up under a guard. Invoices someone else wrote meanwhile
        (a seller's void, another replica) are read and applied again."""
        waiting = list(events)
        for attempt in range(WRITE_RETRIES):
            by_invoice: dict[str, list[PaymentEvent]] = {}
            for event in waiting:
                by_invoice.setdefault(event.data.invoice_id, []).append(event)
            # The first try from this process's copies (the guarded writes check them).
            stored = await self.invoices.get_many(list(by_invoice), recent=attempt == 0)
            changes: list[tuple[Invoice, list[Envelope]]] = []
            for invoice_id, invoice_events in by_invoice.items():
                invoice = stored.get(invoice_id)
                if invoice is None:
                    log.warning("payment events for unknown invoice %s", invoice_id)
                    continue
                outgoing = self._record_payments(invoice, invoice_events)
                if outgoing is not None:
                    invoice.version += 1
                    changes.append((invoice, outgoing))
            conflicted = await self.invoices.save_many(changes)
            for invoice, outgoing in changes:
                if invoice.invoice_id not in conflicted:
                    for sent in outgoing:
                        INVOICE_PAYMENTS.labels(sent.type).inc()
            waiting = [event for event in waiting if event.data.invoice_id in conflicted]
            if not waiting:
                return
        raise RetryLater(f"{len(waiting)} payment events met invoices that kept changing")

    def _record_payments(
        self, invoice: Invoice, events: Sequence[PaymentEvent]
    ) -> list[Envelope] | None:
        """Apply the events `invoice` has not seen; the events to publish, None if none was new."""
        outgoing: list[Envelope] = []
        applied = False
        for event in events:
            event_id = str(event.event_id)
            check_names_its_own(invoice, event, order_id=event.data.order_id)
            if isinstance(event, PaymentSucceeded) and (
                event.data.currency != invoice.currency
                or to_minor(event.data.amount, invoice.currency) != invoice.total
            ):
                raise ForgedEvent(
                    f"payment.succeeded of {event.data.amount} {event.data.currency} for invoice "
                    f"{invoice.invoice_id}, which is not its total"
                )
            if event_id in invoice.processed_events:
                continue
            url = document_url(self.base_url, invoice.invoice_id)
            if isinstance(event, PaymentSucceeded):
                if invoice.record_payment_succeeded(
                    at=event.occurred_at, processor_ref=event.data.processor_ref
                ):
                    outgoing.append(paid_event(invoice, url=url, cause=event))
            elif isinstance(event, PaymentRefunded):
                invoice.record_refund(at=event.occurred_at, refund_ref=event.data.refund_ref)
            else:
                failure = PaymentFailure(
                    reason=event.data.reason,
                    retryable=event.data.retryable,
                    attempt=event.data.attempt,
                )
                if invoice.record_payment_failed(failure):
                    outgoing.append(payment_failed_event(invoice, url=url, cause=event))
            invoice.processed_events = [*invoice.processed_events, event_id][-KEEP:]
            applied = True
        return outgoing if applied else None


def check_names_its_own(invoice: Invoice, event: Envelope, *, order_id: str) -> None:
    """An event about `invoice` must be its seller's and name its order, or it is forged."""
    if invoice.seller_id != event.seller_id or invoice.order_id != order_id:
        raise ForgedEvent(
            f"{event.type} of seller {event.seller_id!r} and order {order_id} names invoice "
            f"{invoice.invoice_id} of another seller or order"
        )

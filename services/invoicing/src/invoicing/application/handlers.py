"""The seller's invoice commands and the events invoicing reacts to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

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
from juniper_shared.request_marks import add_mark, check_marks
from juniper_shared.retries import retry_on_conflict
from tenacity import RetryCallState

from invoicing.application.catch_up import OrderVersions
from invoicing.application.events import (
    document_url,
    issued_event,
    order_from_snapshot,
    paid_event,
    payment_failed_event,
    voided_event,
)
from invoicing.application.ports import (
    CounterRepository,
    InvoiceRepository,
    OrderBook,
    VersionConflict,
)
from invoicing.domain.errors import (
    DomainError,
    InvalidShipping,
    NotFound,
    NotInvoiceable,
    OrderNotCurrent,
)
from invoicing.domain.invoice import (
    Invoice,
    InvoiceStatus,
    PaymentFailure,
    Shipping,
    draft_invoice,
    invoice_id_for,
)
from invoicing.domain.numbering import (
    NumberCounter,
    Reservation,
    Settle,
    Settlement,
    next_step,
    settlement,
)
from invoicing.domain.order import InvoiceableOrder, newest
from invoicing.metrics import (
    INVOICE_PAYMENTS,
    INVOICES_ISSUED,
    INVOICES_VOIDED,
    NUMBERING_CONTENTION,
    NUMBERS_RETURNED,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
FaultPoint = Callable[[str], None]

WRITE_RETRIES = 5
"""A write that lost a race is retried on fresh state this many times."""
CATCH_UP_WAITS = (0.2, 0.4, 0.95)
"""How long a preview waits for the read model to reach the order version it names (1.55 s in
all); after each wait it reads the database again, in case another replica stored it."""
FOLLOWED_WAITS = (0.6, 0.95)
"""The same 1.55 s for an order this process's own consumer follows, the first wait before any
read: its consumer hands the version over, and what the database has is older."""
NUMBERING_ATTEMPTS = 200
"""Bounded wait for a seller's counter when many confirms of that seller race."""
LOCK_STRIPES = 64
RECOVERY_CHUNK = 500
"""Pending reservations checked at once at start-up: their invoices are read as one `find`."""

PaymentEvent = PaymentSucceeded | PaymentFailed | PaymentRefunded


def no_faults(_: str) -> None:
    return None


class Contention(RetryLater):
    """The seller's counter stayed busy for too long; the request may be retried."""


class CounterBusy(VersionConflict):
    """Another process reserved a number meanwhile: worth a short wait before the next try."""


@dataclass(frozen=True)
class ShippingDetails:
    carrier: str
    tracking_number: str
    shipped_at: date
    shipping_cost: Decimal


@dataclass
class InvoicingHandlers:
    orders: OrderBook
    invoices: InvoiceRepository
    counters: CounterRepository
    base_url: str
    clock: Clock = utc_now
    fault: FaultPoint = no_faults
    """Test-only fault injection: called with a step name at each crash-relevant point."""
    versions: OrderVersions = field(default_factory=OrderVersions)
    _locks: list[asyncio.Lock] = field(
        default_factory=lambda: [asyncio.Lock() for _ in range(LOCK_STRIPES)]
    )

    def url(self, invoice_id: str) -> str:
        return document_url(self.base_url, invoice_id)

    # --- reading --------------------------------------------------------------------------

    async def invoice(self, seller_id: str, invoice_id: str) -> Invoice:
        invoice = await self.invoices.get(invoice_id)
        if invoice is None or invoice.seller_id != seller_id:
            raise NotFound(f"invoice {invoice_id} not found")
        return invoice

    async def invoice_by_link(self, invoice_id: str) -> Invoice:
        """The invoice a verified buyer link names (the link stands in for the seller's login)."""
        invoice = await self.invoices.get(invoice_id)
        if invoice is None:
            raise NotFound(f"invoice {invoice_id} not found")
        return invoice

    async def invoices_for_order(self, seller_id: str, order_id: str) -> list[Invoice]:
        return await self.invoices.for_order(seller_id, order_id)

    # --- preview --------------------------------------------------------------------------

    async def preview(
        self,
        seller_id: str,
        order_id: str,
        details: ShippingDetails,
        *,
        order_version: int | None = None,
    ) -> Invoice:
        """Draft (or re-draft) the invoice of an approved order with its shipping details.

        With `order_version` (what the seller saw), never draft from an older version: wait a
        little for `orders.events` to catch up, then refuse with `order_not_current`.
        """
        invoice_id = invoice_id_for(order_id)

        async def draft(number: int) -> Invoice:
            # The first try loads no invoice: it starts from the copy of the draft this process
            # stored last or, with none, drafts the order's first invoice (the usual case). The
            # guarded save checks either (a first draft is an insert, refused if one is stored),
            # and a refusal is looked at again on the stored invoice.
            recent = number == 1
            if recent:
                order = await self._order_at_least(order_id, order_version)
                existing = self.invoices.kept(invoice_id)
            else:
                order, existing = await asyncio.gather(
                    self._order_at_least(order_id, order_version), self.invoices.get(invoice_id)
                )
            if order is None or order.seller_id != seller_id:
                raise NotFound(f"order {order_id} not found")
            if existing is not None:
                check_marks(existing.request_marks)
            try:
                cost = to_minor(details.shipping_cost, order.currency)
            except ValueError as error:
                raise InvalidShipping(f"shipping_cost: {error}") from error
            shipping = Shipping(
                carrier=details.carrier,
                tracking_number=details.tracking_number,
                shipped_at=details.shipped_at,
                shipping_cost=cost,
            )
            now = self.clock()
            if existing is None:
                invoice = draft_invoice(order, shipping, now=now)
            else:
                invoice = existing
                try:
                    invoice.redraft(order, shipping, now=now)
                except DomainError as refused:
                    if recent:
                        raise VersionConflict(invoice_id) from refused
                    raise
            invoice.request_marks = add_mark(invoice.request_marks)
            await self._save(invoice, [])
            return invoice

        try:
            return await retry_on_conflict(draft, conflict=VersionConflict, attempts=WRITE_RETRIES)
        except VersionConflict:
            raise Contention(f"invoice of order {order_id} kept changing; try again") from None

    async def _save(self, invoice: Invoice, events: list[Envelope]) -> None:
        """Store the invoice one version up, or raise VersionConflict if it changed meanwhile."""
        previous = invoice.version
        invoice.version += 1
        if not await self.invoices.save(invoice, events, previous_version=previous):
            raise VersionConflict(invoice.invoice_id)

    async def _order_at_least(self, order_id: str, version: int | None) -> InvoiceableOrder | None:
        # The snapshot this process's consumer stored last serves when it is recent enough (no
        # read): confirm checks the draft against the read model as stored.
        if version is None:
            return await self.orders.get(order_id)
        order = self.versions.recent(order_id, version)
        waits: Sequence[float] = CATCH_UP_WAITS
        if order is None and self.versions.follows(order_id):
            # The version named is on its way through this process's own consumer: wait for
            # it before reading what the database has, which would be older.
            order = await self.versions.wait(order_id, version, timeout=FOLLOWED_WAITS[0])
            waits = FOLLOWED_WAITS[1:]
        if order is not None:
            return order
        order = await self.orders.get(order_id)
        for wait in waits:
            if order is None or order.version >= version:
                break
            # Usually this process's own consumer stores it within milliseconds and hands the
            # snapshot over; otherwise read again (another replica may have stored it).
            order = await self.versions.wait(
                order_id, version, timeout=wait
            ) or await self.orders.get(order_id)
        if order is not None and order.version < version:
            raise OrderNotCurrent(
                f"invoicing has order {order_id} at version {order.version}, not yet {version}; "
                "retry in a moment"
            )
        return order

    # --- confirm: gapless numbering -------------------------------------------------------

    async def confirm(self, seller_id: str, invoice_id: str) -> Invoice:
        """Issue the draft with the seller's next number; confirming again changes nothing.

        Starts from the copy of the draft this process stored last (the preview's, usually):
        numbering checks it with guarded writes. An answer that changes nothing, or a refusal,
        comes from the invoice as stored.
        """
        recent = await self.invoices.get(invoice_id, recent=True)
        if (
            recent is not None
            and recent.status is InvoiceStatus.DRAFT
            and recent.seller_id == seller_id
        ):
            with contextlib.suppress(DomainError):
                return await self._confirm(recent)
        return await self._confirm(await self.invoice(seller_id, invoice_id))

    async def _confirm(self, invoice: Invoice) -> Invoice:
        check_marks(invoice.request_marks)
        if invoice.status is InvoiceStatus.VOID:
            raise NotInvoiceable(f"order {invoice.order_id} was cancelled; invoice is void")
        if invoice.sequence is None:
            invoice.ensure_confirmable(await self.orders.get(invoice.order_id))
            issued = await self._number(invoice.seller_id, invoice)
            invoice = issued or await self.invoice(invoice.seller_id, invoice.invoice_id)
            if invoice.sequence is None:
                # Voided while being numbered (the cancel arrived): its number was given back.
                raise NotInvoiceable(f"order {invoice.order_id} was cancelled; invoice is void")
        return invoice

    async def _number(self, seller_id: str, draft: Invoice) -> Invoice | None:
        """Give the draft the seller's next number; returns it issued, or None when someone
        else settled it (then the caller reads it again)."""
        invoice_id = draft.invoice_id

        async def reserve(number: int) -> Invoice | None:
            # The first try from the counter as this process stored it last (no load) and from
            # the caller's copy of the draft: if that is stale, the guarded write in _settle
            # misses, reads again and gives the number back, so no number is lost.
            recent = number == 1
            counter = await self.counters.get(seller_id, recent=recent) or NumberCounter(seller_id)
            previous = counter.version
            step = next_step(counter)
            if isinstance(step, Settle):
                if step.reservation.invoice_id == invoice_id:
                    await self._settle(counter, step.reservation, confirming=invoice_id)
                    return None
                if not await self._holds_its_number(step.reservation):
                    await self._settle(counter, step.reservation, confirming=invoice_id)
                    raise VersionConflict(seller_id)  # the counter moved on: look again
                # The seller's last confirm is done (its invoice holds the number): its
                # release rides on this reservation's write.
                counter.release(step.reservation)
            invoice = draft if recent else await self.invoices.get(invoice_id)
            if invoice is None or invoice.status is not InvoiceStatus.DRAFT:
                return None  # numbered meanwhile by another process
            reservation = counter.reserve(invoice_id)
            if not await self.counters.save(counter, previous_version=previous):
                if recent:
                    raise VersionConflict(seller_id)
                NUMBERING_CONTENTION.inc()
                raise CounterBusy(seller_id)
            self.fault("number_reserved")
            try:
                return await self._settle(
                    counter, reservation, invoice, confirming=invoice_id, release=False
                )
            except Exception:
                await self._undo(counter, reservation)
                raise

        # In-process confirms of one seller queue here; other processes race on the counter.
        lock = self._locks[zlib.crc32(seller_id.encode()) % LOCK_STRIPES]
        async with lock:
            try:
                return await retry_on_conflict(
                    reserve,
                    conflict=VersionConflict,
                    attempts=NUMBERING_ATTEMPTS,
                    wait=_after_busy,
                )
            except VersionConflict:
                raise Contention(f"numbering for seller {seller_id} is busy; try again") from None

    async def _settle(
        self,
        counter: NumberCounter,
        reservation: Reservation,
        known: Invoice | None = None,
        *,
        confirming: str | None = None,
        release: bool = True,
    ) -> Invoice | None:
        """Bring a pending reservation to its end: number written into the invoice, released.
        Returns the invoice when this call issued it. `known`: the invoice as just read;
        `confirming`: the invoice the request being served confirms (it gets the request's
        Idempotency-Key mark); `release=False`: once this call has written the number, leave
        the reservation pending for the seller's next reservation to release in its write."""

        async def settle(number: int) -> Invoice | None:
            invoice = (
                known
                if number == 1 and known is not None
                else await self.invoices.get(reservation.invoice_id)
            )
            decision = settlement(
                reservation,
                status=invoice.status if invoice else None,
                sequence=invoice.sequence if invoice else None,
                issuable=invoice is not None and _issuable(invoice),
            )
            issued: Invoice | None = None
            if decision is Settlement.WRITE:
                assert invoice is not None
                invoice.issue(reservation.sequence, now=self.clock())
                if invoice.invoice_id == confirming:
                    invoice.request_marks = add_mark(invoice.request_marks)
                previous = invoice.version
                invoice.version += 1
                # Built after the bump: the event carries the version being stored.
                event = issued_event(invoice, url=self.url(invoice.invoice_id))
                if not await self.invoices.save(invoice, [event], previous_version=previous):
                    raise VersionConflict(invoice.invoice_id)
                self.fault("invoice_numbered")
                INVOICES_ISSUED.inc()
                log.debug("issued invoice %s as %s", invoice.invoice_id, invoice.number)
                issued = invoice
                if not release:
                    return issued
                decision = Settlement.RELEASE
            previous = counter.version
            if decision is Settlement.RELEASE:
                counter.release(reservation)
            else:
                log.warning("number %s returned: %s not issuable", reservation, decision)
                NUMBERS_RETURNED.inc()
                counter.give_back(reservation)
            # A miss means someone else settled it first; that is as good.
            await self.counters.save(counter, previous_version=previous)
            return issued

        try:
            return await retry_on_conflict(settle, conflict=VersionConflict, attempts=WRITE_RETRIES)
        except VersionConflict:
            raise Contention(
                f"invoice {reservation.invoice_id} kept changing while numbered"
            ) from None

    async def _undo(self, counter: NumberCounter, reservation: Reservation) -> None:
        """A confirm that failed after reserving leaves no reservation behind: the number goes
        back unless the invoice holds it. If this fails too (the database is away), the
        reservation stays pending and is settled like a crash's."""
        try:
            invoice = await self.invoices.get(reservation.invoice_id)
            previous = counter.version
            if invoice is not None and invoice.sequence == reservation.sequence:
                counter.release(reservation)
            else:
                NUMBERS_RETURNED.inc()
                counter.give_back(reservation)
            await self.counters.save(counter, previous_version=previous)
        except Exception:
            log.exception("could not undo reservation %s; it is settled later", reservation)

    async def recover_numbering(self) -> int:
        """Settle the reservations a crash left unfinished (start-up); returns how many.

        A reservation whose invoice holds its number is finished, only not yet released: the
        seller's next confirm releases it in its own write, so it is left as it is."""
        unfinished = 0
        pending = [
            (counter, counter.pending)
            for counter in await self.counters.with_pending()
            if counter.pending is not None
        ]
        for start in range(0, len(pending), RECOVERY_CHUNK):
            chunk = pending[start : start + RECOVERY_CHUNK]
            # Concurrent reads of one chunk go to the database as one `find`.
            finished = await asyncio.gather(*(self._holds_its_number(r) for _, r in chunk))
            for (counter, reservation), done in zip(chunk, finished, strict=True):
                if not done:
                    await self._settle(counter, reservation)
                    unfinished += 1
        if unfinished:
            log.warning("settled %d numbering reservations left by a crash", unfinished)
        return unfinished

    async def _holds_its_number(self, reservation: Reservation) -> bool:
        """Whether the reserved invoice carries the reserved number. A copy that says so is
        as good as a read: an invoice's number, once written, never changes."""
        invoice = self.invoices.kept(reservation.invoice_id)
        if invoice is None or invoice.sequence != reservation.sequence:
            invoice = await self.invoices.get(reservation.invoice_id)
        return invoice is not None and invoice.sequence == reservation.sequence

    # --- what other services tell us ------------------------------------------------------

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
                outgoing.append(voided_event(invoice, url=self.url(invoice_id), cause=event))
            invoice.processed_events = [*invoice.processed_events, event_id][-KEEP:]
            await self._save(invoice, outgoing)
            INVOICES_VOIDED.labels("issued" if outgoing else "draft").inc()
            log.info("voided invoice %s (%s): order cancelled", invoice_id, invoice.number)

        try:
            await retry_on_conflict(void, conflict=VersionConflict, attempts=WRITE_RETRIES)
        except VersionConflict:
            raise RetryLater(f"invoice {invoice_id} kept changing; batch will be retried") from None

    async def on_payment_events(self, events: Sequence[PaymentEvent]) -> None:
        """Mark invoices paid, failed or refunded, once per event; one invoice's events in order."""
        await apply_per_key(events, lambda event: event.data.invoice_id, self._on_payment)

    async def _on_payment(self, event: PaymentEvent) -> None:
        event_id = str(event.event_id)

        async def record(number: int) -> None:
            # The first try from this process's copy (the guarded save checks it).
            invoice = await self.invoices.get(event.data.invoice_id, recent=number == 1)
            if invoice is None:
                log.warning("payment event for unknown invoice %s", event.data.invoice_id)
                return
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
                return
            url = self.url(invoice.invoice_id)
            outgoing: list[Envelope] = []
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
            await self._save(invoice, outgoing)
            for sent in outgoing:
                INVOICE_PAYMENTS.labels(sent.type).inc()

        try:
            await retry_on_conflict(record, conflict=VersionConflict, attempts=WRITE_RETRIES)
        except VersionConflict:
            raise RetryLater(
                f"invoice {event.data.invoice_id} kept changing; batch will be retried"
            ) from None


def check_names_its_own(invoice: Invoice, event: Envelope, *, order_id: str) -> None:
    """An event about `invoice` must be its seller's and name its order, or it is forged."""
    if invoice.seller_id != event.seller_id or invoice.order_id != order_id:
        raise ForgedEvent(
            f"{event.type} of seller {event.seller_id!r} and order {order_id} names invoice "
            f"{invoice.invoice_id} of another seller or order"
        )


def _issuable(invoice: Invoice) -> bool:
    """Whether the invoice's amounts allow issuing it (a draft stored with a total past the cap
    never can be: its number goes back)."""
    try:
        invoice.check_amounts()
    except DomainError:
        return False
    return True


def _after_busy(state: RetryCallState) -> float:
    """The pause before another try at numbering: none unless the counter was busy."""
    busy = state.outcome is not None and isinstance(state.outcome.exception(), CounterBusy)
    return _backoff(state.attempt_number - 1) if busy else 0.0


def _backoff(attempt: int) -> float:
    """Small, bounded, jittered pause before another try at a busy counter."""
    base: float = min(0.2, 0.005 * 2.0 ** min(attempt, 6))
    return base * (0.5 + random.random())

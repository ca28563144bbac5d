"""Confirming an invoice: the seller's next number, gapless, also across crashes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from juniper_shared.clock import utc_now
from juniper_shared.request_marks import add_mark, check_marks
from juniper_shared.retries import retry_on_conflict
from tenacity import RetryCallState

from invoicing.application.events import (
    document_url,
    issued_event,
)
from invoicing.application.ports import (
    Clock,
    CounterRepository,
    InvoiceRepository,
    OrderBook,
    VersionConflict,
)
from invoicing.application.stored import WRITE_RETRIES, Contention, seller_invoice
from invoicing.domain.errors import (
    DomainError,
    NotInvoiceable,
)
from invoicing.domain.invoice import (
    Invoice,
    InvoiceStatus,
)
from invoicing.domain.numbering import (
    NumberCounter,
    Reservation,
    Settle,
    Settlement,
    next_step,
    settlement,
)
from invoicing.metrics import (
    INVOICES_ISSUED,
    NUMBERING_CONTENTION,
    NUMBERS_RETURNED,
)

log = logging.getLogger(__name__)


FaultPoint = Callable[[str], None]

NUMBERING_ATTEMPTS = 200
"""Bounded wait for a seller's counter when many confirms of that seller race."""
LOCK_STRIPES = 64
RECOVERY_CHUNK = 500
"""Pending reservations checked at once at start-up: their invoices are read as one `find`."""


def no_faults(_: str) -> None:
    return None


class CounterBusy(VersionConflict):
    """Another process reserved a number meanwhile: worth a short wait before the next try."""


@dataclass
class Numbering:
    orders: OrderBook
    invoices: InvoiceRepository
    counters: CounterRepository
    base_url: str
    clock: Clock = utc_now
    fault: FaultPoint = no_faults
    """Fault injection for tests: called with a step name at each crash-relevant point."""
    _locks: list[asyncio.Lock] = field(
        default_factory=lambda: [asyncio.Lock() for _ in range(LOCK_STRIPES)]
    )

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
        return await self._confirm(await seller_invoice(self.invoices, seller_id, invoice_id))

    async def _confirm(self, invoice: Invoice) -> Invoice:
        check_marks(invoice.request_marks)
        if invoice.status is InvoiceStatus.VOID:
            raise NotInvoiceable(f"order {invoice.order_id} was cancelled; invoice is void")
        if invoice.sequence is None:
            invoice.ensure_confirmable(await self.orders.get(invoice.order_id))
            issued = await self._number(invoice.seller_id, invoice)
            invoice = issued or await seller_invoice(
                self.invoices, invoice.seller_id, invoice.invoice_id
            )
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
                raise Contention(
                    "numbering_busy", f"numbering for seller {seller_id} is busy; try again"
                ) from None

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
                event = issued_event(invoice, url=document_url(self.base_url, invoice.invoice_id))
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
                "numbering_busy", f"invoice {reservation.invoice_id} kept changing while numbered"
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

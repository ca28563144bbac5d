"""Confirming an invoice: the seller's next number, gapless, in the invoice's own write.

A number is taken by writing it into the draft together with the `invoice.issued` event: one
guarded write, which the unique index on the seller's numbers refuses (`NumberTaken`) when
another invoice holds that number already. A number exists only once an invoice holds it, so
there is never a gap and never a duplicate, and a crash at any point leaves the draft either
issued with its number and event, or a draft: nothing to settle, nothing to give back.

The next number is the seller's highest plus one. This process remembers the highest it wrote
or read per seller, so a confirm is one write; a refusal means another replica numbered
meanwhile, and the highest is read again (one indexed query).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import zlib
from dataclasses import dataclass, field

from juniper_shared.clock import utc_now
from juniper_shared.request_marks import RequestMark, add_mark, check_marks
from juniper_shared.retries import retry_on_conflict
from tenacity import RetryCallState

from invoicing.application.events import document_url, issued_event
from invoicing.application.ports import (
    Clock,
    InvoiceRepository,
    NumberTaken,
    OrderBook,
    VersionConflict,
)
from invoicing.application.stored import Contention, seller_invoice
from invoicing.domain.errors import DomainError, NotInvoiceable
from invoicing.domain.invoice import Invoice, InvoiceStatus
from invoicing.metrics import INVOICES_ISSUED, NUMBERING_CONTENTION

log = logging.getLogger(__name__)


NUMBERING_ATTEMPTS = 200
"""Bounded wait for a seller's next number when many confirms of that seller race."""
LOCK_STRIPES = 64
SELLERS_REMEMBERED = 65_536
"""Highest numbers kept per process; beyond that the map starts over (each seller's next
confirm reads its highest once)."""


@dataclass
class Numbering:
    orders: OrderBook
    invoices: InvoiceRepository
    base_url: str
    clock: Clock = utc_now
    _highest: dict[str, int] = field(default_factory=dict)
    """The highest number this process wrote or read, per seller."""
    _locks: list[asyncio.Lock] = field(
        default_factory=lambda: [asyncio.Lock() for _ in range(LOCK_STRIPES)]
    )

    async def confirm(
        self, seller_id: str, invoice_id: str, *, mark: RequestMark | None = None
    ) -> Invoice:
        """Issue the draft with the seller's next number; confirming again changes nothing.

        Starts from the copy of the draft this process stored last (the preview's, usually):
        the guarded write checks it. An answer that changes nothing, or a refusal, comes from
        the invoice as stored.
        """
        recent = await self.invoices.get(invoice_id, recent=True)
        if (
            recent is not None
            and recent.status is InvoiceStatus.DRAFT
            and recent.seller_id == seller_id
        ):
            with contextlib.suppress(DomainError):
                return await self._confirm(recent, mark)
        invoice = await seller_invoice(self.invoices, seller_id, invoice_id)
        return await self._confirm(invoice, mark)

    async def _confirm(self, invoice: Invoice, mark: RequestMark | None) -> Invoice:
        check_marks(invoice.request_marks, mark)
        if invoice.status is InvoiceStatus.VOID:
            raise NotInvoiceable(f"order {invoice.order_id} was cancelled; invoice is void")
        if invoice.sequence is None:
            invoice.ensure_confirmable(await self.orders.get(invoice.order_id))
            invoice = await self._number(invoice, mark)
            if invoice.sequence is None:
                # Voided while being numbered (the cancel arrived first).
                raise NotInvoiceable(f"order {invoice.order_id} was cancelled; invoice is void")
        return invoice

    async def _number(self, draft: Invoice, mark: RequestMark | None) -> Invoice:
        """Write the seller's next number into the draft; returns the invoice as stored after
        (numbered by this call, or by another process meanwhile, or voided)."""
        seller_id = draft.seller_id

        async def issue(attempt: int) -> Invoice:
            invoice = (
                draft
                if attempt == 1
                else await seller_invoice(self.invoices, seller_id, draft.invoice_id)
            )
            if invoice.status is not InvoiceStatus.DRAFT:
                return invoice
            number = await self._next_number(seller_id)
            invoice.issue(number, now=self.clock())
            invoice.request_marks = add_mark(invoice.request_marks, mark)
            previous = invoice.version
            invoice.version += 1
            # Built after the bump: the event carries the version being stored.
            event = issued_event(invoice, url=document_url(self.base_url, invoice.invoice_id))
            try:
                saved = await self.invoices.save(invoice, [event], previous_version=previous)
            except NumberTaken:
                self._highest.pop(seller_id, None)  # another replica numbered: read it again
                NUMBERING_CONTENTION.inc()
                raise
            if not saved:
                raise VersionConflict(invoice.invoice_id)
            self._remember(seller_id, number)
            INVOICES_ISSUED.inc()
            log.debug("issued invoice %s as %s", invoice.invoice_id, invoice.number)
            return invoice

        # In-process confirms of one seller queue here; other processes race on the index.
        lock = self._locks[zlib.crc32(seller_id.encode()) % LOCK_STRIPES]
        async with lock:
            try:
                return await retry_on_conflict(
                    issue, conflict=VersionConflict, attempts=NUMBERING_ATTEMPTS, wait=_after_taken
                )
            except VersionConflict:
                raise Contention(
                    "numbering_busy", f"numbering for seller {seller_id} is busy; try again"
                ) from None

    async def _next_number(self, seller_id: str) -> int:
        highest = self._highest.get(seller_id)
        if highest is None:
            highest = await self.invoices.highest_number(seller_id)
            self._remember(seller_id, highest)
        return highest + 1

    def _remember(self, seller_id: str, number: int) -> None:
        if len(self._highest) >= SELLERS_REMEMBERED and seller_id not in self._highest:
            self._highest.clear()
        self._highest[seller_id] = max(number, self._highest.get(seller_id, 0))


def _after_taken(state: RetryCallState) -> float:
    """The pause before another try: none after a stale draft, a short one after another
    replica took the number (it is likely numbering more)."""
    taken = state.outcome is not None and isinstance(state.outcome.exception(), NumberTaken)
    return _backoff(state.attempt_number - 1) if taken else 0.0


def _backoff(attempt: int) -> float:
    """Small, bounded, jittered pause."""
    base: float = min(0.2, 0.005 * 2.0 ** min(attempt, 6))
    return base * (0.5 + random.random())

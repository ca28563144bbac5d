"""An invoice as stored: read for its seller, written one version up under a guard."""

from __future__ import annotations

from collections.abc import Sequence

from juniper_shared.contracts.events import Envelope
from juniper_shared.errors import RetryLater

from invoicing.application.ports import InvoiceRepository, VersionConflict
from invoicing.domain.errors import NotFound
from invoicing.domain.invoice import Invoice

WRITE_RETRIES = 5
"""A write that lost a race is retried on fresh state this many times."""


class Contention(RetryLater):
    """Concurrent writes kept winning the race for too long (`numbering_busy`: the seller's
    numbers; `invoice_busy`: the invoice); the request may be retried as it is."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def seller_invoice(invoices: InvoiceRepository, seller_id: str, invoice_id: str) -> Invoice:
    """The stored invoice, if it is the seller's."""
    invoice = await invoices.get(invoice_id)
    if invoice is None or invoice.seller_id != seller_id:
        raise NotFound(f"invoice {invoice_id} not found")
    return invoice


async def save_next(
    invoices: InvoiceRepository, invoice: Invoice, events: Sequence[Envelope]
) -> None:
    """Store the invoice one version up, or raise VersionConflict if it changed meanwhile."""
    previous = invoice.version
    invoice.version += 1
    if not await invoices.save(invoice, events, previous_version=previous):
        raise VersionConflict(invoice.invoice_id)

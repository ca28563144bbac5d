"""Reading invoices and drafting them: the seller's preview of an approved order's invoice."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from juniper_shared.clock import utc_now
from juniper_shared.contracts.money import to_minor
from juniper_shared.request_marks import RequestMark, add_mark, check_marks
from juniper_shared.retries import retry_on_conflict

from invoicing.application.catch_up import OrderVersions
from invoicing.application.events import (
    document_url,
)
from invoicing.application.ports import (
    Clock,
    InvoiceRepository,
    OrderBook,
    VersionConflict,
)
from invoicing.application.stored import WRITE_RETRIES, Contention, save_next, seller_invoice
from invoicing.domain.errors import (
    DomainError,
    InvalidShipping,
    NotFound,
    OrderNotCurrent,
)
from invoicing.domain.invoice import (
    Invoice,
    Shipping,
    draft_invoice,
    invoice_id_for,
)
from invoicing.domain.order import InvoiceableOrder

CATCH_UP_WAITS = (0.2, 0.4, 0.95)
"""How long a preview waits for the read model to reach the order version it names (1.55 s in
all); after each wait it reads the database again, in case another replica stored it."""
FOLLOWED_WAITS = (0.6, 0.95)
"""The same 1.55 s for an order this process's own consumer follows, the first wait before any
read: its consumer hands the version over, and what the database has is older."""


@dataclass(frozen=True)
class ShippingDetails:
    carrier: str
    tracking_number: str
    shipped_at: date
    shipping_cost: Decimal


@dataclass
class Previews:
    orders: OrderBook
    invoices: InvoiceRepository
    base_url: str
    clock: Clock = utc_now
    versions: OrderVersions = field(default_factory=OrderVersions)

    def url(self, invoice_id: str) -> str:
        return document_url(self.base_url, invoice_id)

    async def invoice(self, seller_id: str, invoice_id: str) -> Invoice:
        return await seller_invoice(self.invoices, seller_id, invoice_id)

    async def invoice_by_link(self, invoice_id: str) -> Invoice:
        """The invoice a verified buyer link names (the link stands in for the seller's login)."""
        invoice = await self.invoices.get(invoice_id)
        if invoice is None:
            raise NotFound(f"invoice {invoice_id} not found")
        return invoice

    async def invoices_for_order(self, seller_id: str, order_id: str) -> list[Invoice]:
        return await self.invoices.for_order(seller_id, order_id)

    async def preview(
        self,
        seller_id: str,
        order_id: str,
        details: ShippingDetails,
        *,
        order_version: int | None = None,
        mark: RequestMark | None = None,
    ) -> Invoice:
        """Draft (or re-draft) the invoice of an approved order with its shipping details;
        `mark`: the request's Idempotency-Key mark, checked and stored with the draft.

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
                check_marks(existing.request_marks, mark)
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
            invoice.request_marks = add_mark(invoice.request_marks, mark)
            await save_next(self.invoices, invoice, [])
            return invoice

        try:
            return await retry_on_conflict(draft, conflict=VersionConflict, attempts=WRITE_RETRIES)
        except VersionConflict:
            raise Contention(
                "invoice_busy", f"invoice of order {order_id} kept changing; try again"
            ) from None

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
            # An order not stored yet is older still: the seller saw it, so it is on its way.
            if order is not None and order.version >= version:
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

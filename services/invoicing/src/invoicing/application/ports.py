"""What the handlers need from the outside world."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from juniper_shared.contracts.events import Envelope

from invoicing.domain.invoice import Invoice
from invoicing.domain.order import InvoiceableOrder

Clock = Callable[[], datetime]


class VersionConflict(Exception):
    """A guarded `save` found the document changed: the handler tries again on fresh state."""


class NumberTaken(VersionConflict):
    """The invoice's number is held by another invoice of the seller (the unique index refused
    it): another process numbered meanwhile."""


class OrderBook(Protocol):
    """The read model of orders, fed by `orders.events`."""

    async def get(self, order_id: str) -> InvoiceableOrder | None: ...

    async def apply(self, orders: Sequence[InvoiceableOrder]) -> int:
        """Store each snapshot unless a newer version is stored; returns how many were stored."""


class InvoiceRepository(Protocol):
    async def get(self, invoice_id: str, *, recent: bool = False) -> Invoice | None:
        """The stored invoice. With `recent`, this process's copy of what it stored or read
        last, when it has one: possibly outdated by another replica, so only for a change whose
        guarded `save` checks it."""

    def kept(self, invoice_id: str) -> Invoice | None:
        """This process's copy of the invoice as it stored or read it last, without a round
        trip; None when it has none, which says nothing about the database."""

    async def for_order(self, seller_id: str, order_id: str) -> list[Invoice]: ...

    async def save(
        self, invoice: Invoice, events: Sequence[Envelope], *, previous_version: int
    ) -> bool:
        """Store the invoice and its events in one write if it is still at `previous_version`
        (0: not stored yet). Returns False when someone else wrote first; raises NumberTaken
        when another invoice of the seller holds its number."""

    async def highest_number(self, seller_id: str) -> int:
        """The highest number any of the seller's invoices holds (0 for none)."""

    async def get_many(self, invoice_ids: Sequence[str], *, recent: bool) -> dict[str, Invoice]:
        """The stored invoices among `invoice_ids`, in one read (`recent`: as for `get`)."""

    async def save_many(self, changes: Sequence[tuple[Invoice, Sequence[Envelope]]]) -> set[str]:
        """Store stored invoices one version up, each with its events and guarded by the version
        below, in one bulk write; each change's last processed event id marks it. Returns the
        ids of the invoices someone else wrote first (nothing of theirs is stored)."""

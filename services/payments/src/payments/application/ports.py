"""What the handlers need from the outside world."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from juniper_shared.contracts.events import Envelope

from payments.domain.payment import Payment


class VersionConflict(Exception):
    """The stored payment changed since it was read."""


@dataclass(frozen=True)
class ChargeRequest:
    amount: str
    """Decimal string in the currency's minor units, e.g. "125.50"."""
    currency: str
    card_token: str = field(repr=False)
    reference: str
    idempotency_key: str
    description: str = ""


@dataclass(frozen=True)
class ChargeResult:
    """The processor's final answer: approved, or declined with a reason."""

    approved: bool
    processor_ref: str | None
    decline_code: str | None = None


@dataclass(frozen=True)
class RefundRequest:
    charge_ref: str
    """The processor's id of the charge to give back."""
    amount: str
    idempotency_key: str


@dataclass(frozen=True)
class RefundResult:
    refund_ref: str


class ProcessorUnavailable(Exception):
    """Timeouts, connection errors, 429 or 5xx outlasted the retries."""


class ProcessorRejected(Exception):
    """The processor refused the request itself (a 4xx other than a decline)."""


class CardProcessor(Protocol):
    async def charge(self, request: ChargeRequest) -> ChargeResult:
        """Charge once per idempotency key; raises ProcessorUnavailable or ProcessorRejected."""

    async def refund(self, request: RefundRequest) -> RefundResult:
        """Refund a succeeded charge once per idempotency key; raises ProcessorUnavailable or
        ProcessorRejected (the charge did not succeed, or was refunded under another key)."""


@dataclass(frozen=True)
class StoredCard:
    seller_id: str
    card_token: str = field(repr=False)
    brand: str
    last4: str


@dataclass(frozen=True)
class PlacedCard:
    order_id: str
    seller_id: str
    card_token: str = field(repr=False)
    brand: str
    last4: str


class CardVault(Protocol):
    """Card tokens by order; the only place a token is kept after checkout handed it over."""

    async def add_placed(self, cards: Sequence[PlacedCard]) -> None:
        """Insert cards of placed orders; those already there are left alone."""

    async def add_split(self, links: Sequence[tuple[str, str, str]]) -> None:
        """(child order id, parent order id, seller id): the child pays with the parent's card."""

    async def card_for(self, order_id: str) -> StoredCard | None: ...

    async def forget(self, seller_id: str, order_ids: Sequence[str]) -> None:
        """Remove the seller's cards (or split links) of these orders: they will never be charged."""


class PaymentRepository(Protocol):
    async def get(self, invoice_id: str) -> Payment | None: ...

    async def add_new(self, payments: Sequence[tuple[Payment, str]]) -> list[str]:
        """Insert payments (with the id of the event that caused each); those already there are
        left alone. Returns the invoice ids that were new."""

    async def save(self, payment: Payment, events: Sequence[Envelope]) -> None:
        """Store the payment (guarded by the version it was read at) and its events in one write;
        raises VersionConflict."""

    async def pending(self, *, since_before: datetime, limit: int) -> list[str]:
        """Invoice ids with a pending attempt or refund, last written before `since_before`."""


Job = Callable[[], Awaitable[None]]


class Scheduler(Protocol):
    def submit(self, key: str, job: Job) -> bool:
        """Run `job` in the background unless one for `key` runs already; False if not taken."""

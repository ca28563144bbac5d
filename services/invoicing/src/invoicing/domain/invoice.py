"""The invoice aggregate: draft from an approved order, issue with a number, record payment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from juniper_shared.contracts.money import AmountOutOfRange, check_totals

from invoicing.domain.errors import InvalidShipping, InvalidState, NotInvoiceable
from invoicing.domain.order import InvoiceableOrder, OrderLine


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    ISSUED = "issued"
    PAID = "paid"
    PAYMENT_FAILED = "payment_failed"
    VOID = "void"


class PaymentStatus(StrEnum):
    NONE = "none"
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    REFUNDED = "refunded"


VOIDABLE = frozenset(
    {InvoiceStatus.DRAFT, InvoiceStatus.ISSUED, InvoiceStatus.PAYMENT_FAILED, InvoiceStatus.PAID}
)
"""An invoice whose order is cancelled becomes void from any of these."""

NUMBER_PREFIX = "INV-"


def format_number(sequence: int) -> str:
    """The seller-facing invoice number for the n-th invoice of a seller: INV-000001."""
    return f"{NUMBER_PREFIX}{sequence:06d}"


def invoice_id_for(order_id: str) -> str:
    """One order gets one invoice, so its id follows from the order's."""
    return f"inv-{order_id}"


@dataclass(frozen=True)
class Shipping:
    carrier: str
    tracking_number: str
    shipped_at: date
    shipping_cost: int
    """In the currency's minor units."""


def due_date(payment_method: Mapping[str, Any], shipped_at: date) -> date:
    """Net terms are due `days` after shipping; a card or other method is due on issue."""
    if payment_method.get("type") == "net_terms":
        return shipped_at + timedelta(days=int(payment_method["days"]))
    return shipped_at


@dataclass(frozen=True)
class PaymentFailure:
    reason: str
    retryable: bool
    attempt: int


@dataclass
class Invoice:
    invoice_id: str
    order_id: str
    order_version: int
    """The order snapshot the lines were taken from; a later order change makes the draft stale."""
    seller_id: str
    currency: str
    buyer: Mapping[str, Any]
    billing_address: Mapping[str, Any]
    shipping_address: Mapping[str, Any]
    payment_method: Mapping[str, Any]
    lines: list[OrderLine]
    shipping: Shipping
    created_at: datetime
    seller_name: str | None = None
    status: InvoiceStatus = InvoiceStatus.DRAFT
    sequence: int | None = None
    issued_at: datetime | None = None
    paid_at: datetime | None = None
    processor_ref: str | None = None
    failure: PaymentFailure | None = None
    voided_at: datetime | None = None
    refunded_at: datetime | None = None
    refund_ref: str | None = None
    version: int = 0
    processed_events: list[str] = field(default_factory=list)
    request_marks: list[str] = field(default_factory=list)
    """Marks of the keyed requests that changed the invoice (juniper_shared.idempotency)."""

    @property
    def number(self) -> str | None:
        return format_number(self.sequence) if self.sequence is not None else None

    @property
    def subtotal(self) -> int:
        return sum(line.line_total for line in self.lines)

    @property
    def shipping_cost(self) -> int:
        return self.shipping.shipping_cost

    @property
    def total(self) -> int:
        return self.subtotal + self.shipping_cost

    @property
    def due_date(self) -> date:
        return due_date(self.payment_method, self.shipping.shipped_at)

    @property
    def payment_status(self) -> PaymentStatus:
        if self.refunded_at is not None:
            return PaymentStatus.REFUNDED
        if self.status is InvoiceStatus.VOID:
            # A charge that got through before (or after) the void stays "paid" until refunded.
            return PaymentStatus.PAID if self.paid_at is not None else PaymentStatus.NONE
        return {
            InvoiceStatus.DRAFT: PaymentStatus.NONE,
            InvoiceStatus.VOID: PaymentStatus.NONE,
            InvoiceStatus.ISSUED: PaymentStatus.PENDING,
            InvoiceStatus.PAID: PaymentStatus.PAID,
            InvoiceStatus.PAYMENT_FAILED: PaymentStatus.FAILED,
        }[self.status]

    # --- preview and confirm --------------------------------------------------------------

    def redraft(self, order: InvoiceableOrder, shipping: Shipping, *, now: datetime) -> None:
        """Previewing again replaces the draft with the order as it stands now."""
        if self.status is InvoiceStatus.VOID:
            raise NotInvoiceable(f"order {self.order_id} was cancelled; its invoice is void")
        if self.status is not InvoiceStatus.DRAFT:
            raise NotInvoiceable(
                f"order {self.order_id} already has invoice {self.number} ({self.status.value})"
            )
        fresh = draft_invoice(order, shipping, now=now)
        # What the invoice remembers across drafts: its version and what already acted on it.
        fresh.version = self.version
        fresh.processed_events = self.processed_events
        fresh.request_marks = self.request_marks
        self.__dict__.update(fresh.__dict__)

    def ensure_confirmable(self, order: InvoiceableOrder | None) -> None:
        """A draft is issued only for the approved order exactly as it was previewed."""
        if self.status is InvoiceStatus.VOID:
            raise NotInvoiceable(f"order {self.order_id} was cancelled; invoice is void")
        if self.status is not InvoiceStatus.DRAFT:
            raise InvalidState(f"invoice {self.invoice_id} is {self.status.value}")
        if order is None or not order.invoiceable:
            status = order.status if order else "unknown"
            raise NotInvoiceable(f"order {self.order_id} is {status}; only approved orders")
        if order.version != self.order_version:
            raise InvalidState(
                f"order {self.order_id} changed since the preview; preview the invoice again"
            )
        self.check_amounts()

    def check_amounts(self) -> None:
        """Every line total, the subtotal, the shipping cost and the total below the cap;
        raises InvalidShipping (`validation_error`) naming the amount otherwise."""
        try:
            check_totals(
                currency=self.currency,
                line_totals=(
                    (f"lines[{index}].line_total", line.line_total)
                    for index, line in enumerate(self.lines)
                ),
                shipping=("shipping.shipping_cost", self.shipping_cost),
            )
        except AmountOutOfRange as error:
            raise InvalidShipping(str(error)) from error

    def issue(self, sequence: int, *, now: datetime) -> None:
        """Issue the draft with its number (the seller's next, which its write takes)."""
        if self.status is not InvoiceStatus.DRAFT:
            raise InvalidState(f"invoice {self.invoice_id} is {self.status.value}")
        self.status = InvoiceStatus.ISSUED
        self.sequence = sequence
        self.issued_at = now

    # --- payment outcome ------------------------------------------------------------------

    # --- the order is cancelled -----------------------------------------------------------

    def void(self, *, now: datetime) -> bool:
        """The order was cancelled: the invoice is void, keeping its number (numbers stay
        gapless; a voided invoice is an accounting record). Returns whether it changed."""
        if self.status not in VOIDABLE:
            return False
        self.status = InvoiceStatus.VOID
        self.voided_at = now
        return True

    @property
    def buyer_was_told(self) -> bool:
        """An issued invoice reached the buyer (and payments); a voided draft never did."""
        return self.number is not None

    def record_refund(self, *, at: datetime, refund_ref: str) -> bool:
        """The charge was given back (after a void); returns whether anything changed."""
        if self.refunded_at is not None:
            return False
        self.refunded_at = at
        self.refund_ref = refund_ref
        return True

    def record_payment_succeeded(self, *, at: datetime, processor_ref: str | None) -> bool:
        """Paid from issued or after a failure; returns whether it became paid.

        A charge that lands on a void invoice is kept as a fact (it will be refunded) but
        never makes the invoice paid."""
        if self.status is InvoiceStatus.VOID:
            if self.paid_at is None:
                self.paid_at = at
                self.processor_ref = processor_ref
            return False
        if self.status not in (InvoiceStatus.ISSUED, InvoiceStatus.PAYMENT_FAILED):
            return False
        self.status = InvoiceStatus.PAID
        self.paid_at = at
        self.processor_ref = processor_ref
        return True

    def record_payment_failed(self, failure: PaymentFailure) -> bool:
        """A failure counts only while unpaid; returns whether anything changed."""
        if self.status not in (InvoiceStatus.ISSUED, InvoiceStatus.PAYMENT_FAILED):
            return False
        self.status = InvoiceStatus.PAYMENT_FAILED
        self.failure = failure
        return True


def draft_invoice(order: InvoiceableOrder, shipping: Shipping, *, now: datetime) -> Invoice:
    """A draft invoice for an approved order, totals from its lines in integer minor units."""
    if not order.invoiceable:
        raise NotInvoiceable(
            f"order {order.order_id} is {order.status}; only approved orders can be invoiced"
        )
    if shipping.shipping_cost < 0:
        raise InvalidShipping("shipping_cost cannot be negative")
    invoice = Invoice(
        invoice_id=invoice_id_for(order.order_id),
        order_id=order.order_id,
        order_version=order.version,
        seller_id=order.seller_id,
        seller_name=order.seller_name,
        currency=order.currency,
        buyer=order.buyer,
        billing_address=order.billing_address,
        shipping_address=order.shipping_address,
        payment_method=order.payment_method,
        lines=list(order.lines),
        shipping=shipping,
        created_at=now,
    )
    invoice.check_amounts()
    return invoice

"""The order aggregate: life cycle, lines and exact totals in integer minor units."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from juniper_shared.contracts.money import AmountOutOfRange, check_totals

from orders.domain.errors import InvalidEdit, InvalidState
from orders.domain.expiry import DEFAULT_EXPIRY_DAYS, deadline


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class PaymentStatus(StrEnum):
    NONE = "none"
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"


REJECT_REASONS = ("out_of_stock", "outside_territory", "other")
BUYER_NOT_APPROVED = "buyer_not_approved"


@dataclass(frozen=True)
class Line:
    line_id: str
    sku: str
    name: str
    unit_price: int
    """Price of one unit in the currency's minor units (cents)."""
    quantity: int

    @property
    def line_total(self) -> int:
        return self.unit_price * self.quantity


def check_amounts(lines: Iterable[Line], *, shipping_fee: int, currency: str) -> None:
    """Raises InvalidEdit when a line total, the subtotal or the total would reach the cap."""
    try:
        check_totals(
            currency=currency,
            line_totals=((f"line {line.line_id} line_total", line.line_total) for line in lines),
            shipping=("shipping_fee", shipping_fee),
        )
    except AmountOutOfRange as error:
        raise InvalidEdit(str(error)) from error


VOID = "void"
"""The invoice status of an order cancelled after it was invoiced."""


@dataclass(frozen=True)
class InvoiceLink:
    invoice_id: str
    number: str
    status: str
    url: str


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    type: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Order:
    """One buyer's order with one seller. Mutating methods enforce the life cycle."""

    order_id: str
    seller_id: str
    status: Status
    placed_at: datetime
    currency: str
    buyer: Mapping[str, Any]
    lines: list[Line]
    shipping_fee: int
    shipping_address: Mapping[str, Any]
    billing_address: Mapping[str, Any]
    payment_method: Mapping[str, Any]
    """Without secrets: brand and last four digits of a card at most."""
    version: int = 1
    seller_name: str | None = None
    customer_id: str | None = None
    notes: str | None = None
    split_from: str | None = None
    split_into: list[str] = field(default_factory=list)
    rejection: Mapping[str, str] | None = None
    invoice: InvoiceLink | None = None
    payment_status: PaymentStatus = PaymentStatus.NONE
    history: list[HistoryEntry] = field(default_factory=list)
    request_marks: list[str] = field(default_factory=list)
    """Marks of the keyed requests that changed the order (juniper_shared.idempotency)."""
    expires_at: datetime | None = None
    """While pending: when it expires (`placed_at` plus the seller's window then)."""
    expiry_days: int | None = None
    """The seller's window `expires_at` was computed with."""

    # --- totals ---------------------------------------------------------------------------

    @property
    def subtotal(self) -> int:
        return sum(line.line_total for line in self.lines)

    @property
    def total(self) -> int:
        return self.subtotal + self.shipping_fee

    @property
    def is_editable(self) -> bool:
        """Lines may change while pending, or approved and not yet invoiced."""
        return self.status is Status.PENDING or (
            self.status is Status.APPROVED and self.invoice is None
        )

    # --- the seller's decisions -----------------------------------------------------------

    def ensure_can_accept(self) -> None:
        self._require(self.status is Status.PENDING, "only a pending order can be accepted")

    def accept(self, *, now: datetime, customer_id: str | None) -> None:
        self.ensure_can_accept()
        self.status = Status.APPROVED
        if customer_id is not None:
            self.customer_id = customer_id
        self._record(now, "accepted", customer_id=self.customer_id)

    def reject(self, *, now: datetime, reason: str, message: str) -> None:
        self._require(self.status is Status.PENDING, "only a pending order can be rejected")
        if reason not in (*REJECT_REASONS, BUYER_NOT_APPROVED):
            raise InvalidEdit(f"unknown reject reason {reason!r}")
        self.status = Status.REJECTED
        self.rejection = {"reason": reason, "message": message}
        self._record(now, "rejected", reason=reason, message=message)

    def expire(self, *, now: datetime) -> None:
        """The seller did not answer in time: the order closes, nothing more can happen to it."""
        self._require(self.status is Status.PENDING, "only a pending order can expire")
        if self.expires_at is None or self.expires_at > now:
            raise InvalidState(f"order {self.order_id} is not due until {self.expires_at}")
        self.status = Status.EXPIRED
        self._record(now, "expired", expires_at=self.expires_at)

    def cancel(self, *, now: datetime, message: str) -> None:
        self._require(self.status is Status.APPROVED, "only an approved order can be cancelled")
        self._require(self.invoice is None, "an invoiced order cannot be cancelled")
        self.status = Status.CANCELLED
        self._record(now, "cancelled", message=message)

    # --- editing lines --------------------------------------------------------------------

    def change_quantities(self, quantities: Mapping[str, int], *, now: datetime) -> None:
        self._require_editable()
        self._require_lines(quantities)
        for quantity in quantities.values():
            if quantity < 1:
                raise InvalidEdit("a quantity must be at least 1; remove the item instead")
        changes = {
            line.line_id: {"from": line.quantity, "to": quantities[line.line_id]}
            for line in self.lines
            if line.line_id in quantities and quantities[line.line_id] != line.quantity
        }
        lines = [
            replace(line, quantity=quantities.get(line.line_id, line.quantity))
            for line in self.lines
        ]
        check_amounts(lines, shipping_fee=self.shipping_fee, currency=self.currency)
        self.lines = lines
        self._record(now, "quantities_changed", changes=changes, subtotal=self.subtotal)

    def remove_lines(self, line_ids: Iterable[str], *, now: datetime) -> None:
        self._require_editable()
        removing = self._require_lines(line_ids)
        if len(removing) >= len(self.lines):
            raise InvalidEdit("an order cannot be left with no items; reject it instead")
        self.lines = [line for line in self.lines if line.line_id not in removing]
        self._record(now, "items_removed", line_ids=sorted(removing), subtotal=self.subtotal)

    def split(self, line_ids: Iterable[str], *, now: datetime) -> Order:
        """Move the given lines into a new pending order; both sides keep at least one line."""
        self._require_editable()
        moving = self._require_lines(line_ids)
        if len(moving) >= len(self.lines):
            raise InvalidEdit("a split must leave at least one item on the original order")
        new_order_id = f"{self.order_id}-{len(self.split_into) + 1}"
        moved = [line for line in self.lines if line.line_id in moving]
        self.lines = [line for line in self.lines if line.line_id not in moving]
        self.split_into = [*self.split_into, new_order_id]
        self._record(now, "split", new_order_id=new_order_id, line_ids=sorted(moving))
        return Order(
            order_id=new_order_id,
            seller_id=self.seller_id,
            seller_name=self.seller_name,
            status=Status.PENDING,
            placed_at=self.placed_at,
            currency=self.currency,
            buyer=self.buyer,
            lines=moved,
            # Shipping is charged once, on the original order.
            shipping_fee=0,
            shipping_address=self.shipping_address,
            billing_address=self.billing_address,
            payment_method=self.payment_method,
            customer_id=self.customer_id,
            notes=self.notes,
            split_from=self.order_id,
            # Split off a pending order, it keeps that order's deadline; off an approved one,
            # the seller's window starts now.
            expires_at=(
                self.expires_at
                if self.status is Status.PENDING or self.expires_at is None
                else deadline(now, self.expiry_days or DEFAULT_EXPIRY_DAYS)
            ),
            expiry_days=self.expiry_days,
            history=[HistoryEntry(now, "split_from", {"order_id": self.order_id})],
        )

    # --- what invoicing tells us ----------------------------------------------------------

    def link_invoice(self, invoice: InvoiceLink, *, now: datetime) -> None:
        current = self.invoice
        if (
            current is not None
            and current.invoice_id == invoice.invoice_id
            and current.status == VOID
        ):
            return  # a late or replayed `invoice.issued` never revives a void invoice
        first = self.invoice is None or self.invoice.invoice_id != invoice.invoice_id
        self.invoice = invoice
        if self.payment_status is PaymentStatus.NONE:
            self.payment_status = PaymentStatus.PENDING
        if first:
            self._record(now, "invoiced", invoice_id=invoice.invoice_id, number=invoice.number)

    def void_invoice(self, invoice: InvoiceLink, *, now: datetime) -> None:
        """The order was cancelled after its invoice was issued, so invoicing voided it.

        The row's `payment_status` is left as it was: whether a charge is refunded is told on
        `payments.events`, which this service does not read (the invoice shows the refund)."""
        if self.invoice is not None and self.invoice.status == VOID:
            return
        self.invoice = replace(invoice, status=VOID)
        self._record(now, "invoice_voided", invoice_id=invoice.invoice_id, number=invoice.number)

    def record_payment(self, status: PaymentStatus, *, now: datetime, reason: str = "") -> None:
        if self.payment_status is PaymentStatus.PAID:
            return  # a late failure never undoes a payment
        if self.invoice is not None and self.invoice.status == VOID:
            return  # the invoice no longer asks for payment
        self.payment_status = status
        if self.invoice is not None:
            invoice_status = "paid" if status is PaymentStatus.PAID else "payment_failed"
            self.invoice = replace(self.invoice, status=invoice_status)
        self._record(now, f"payment_{status.value}", **({"reason": reason} if reason else {}))

    # --- helpers --------------------------------------------------------------------------

    def _require(self, condition: bool, message: str) -> None:
        if not condition:
            raise InvalidState(f"{message} (order is {self.status.value})")

    def _require_editable(self) -> None:
        if not self.is_editable:
            state = "invoiced" if self.invoice is not None else self.status.value
            raise InvalidState(
                f"items can only change while the order is pending or approved and not invoiced (order is {state})"
            )

    def _require_lines(self, line_ids: Iterable[str]) -> set[str]:
        wanted = list(line_ids)
        if not wanted:
            raise InvalidEdit("name at least one line")
        if len(set(wanted)) != len(wanted):
            raise InvalidEdit("a line is named twice")
        known = {line.line_id for line in self.lines}
        unknown = [line_id for line_id in wanted if line_id not in known]
        if unknown:
            raise InvalidEdit(f"no such line: {', '.join(unknown)}")
        return set(wanted)

    def _record(self, now: datetime, kind: str, **details: Any) -> None:
        self.history.append(HistoryEntry(now, kind, details))

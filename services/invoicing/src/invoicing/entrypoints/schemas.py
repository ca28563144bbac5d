"""HTTP bodies of the invoicing API; money as decimal strings."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from juniper_shared.contracts.common import Address, Buyer, PaymentMethodSummary, Shipping
from juniper_shared.contracts.money import ShownAmount, from_minor
from pydantic import BaseModel, ConfigDict, Field, Strict

from invoicing.domain.invoice import Invoice


class PreviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shipping: Shipping
    order_version: Annotated[int, Strict(), Field(ge=1, le=1_000_000_000)] | None = None
    """The order version the seller is looking at (the orders service's ETag). Invoicing learns
    of order changes over Kafka; with this, a preview never drafts from an older version."""


class InvoiceLineView(BaseModel):
    sku: str
    name: str
    unit_price: ShownAmount
    quantity: int
    line_total: ShownAmount


class ShippingView(BaseModel):
    carrier: str
    tracking_number: str
    shipped_at: date
    shipping_cost: ShownAmount


class PaymentFailureView(BaseModel):
    reason: str
    retryable: bool
    attempt: int


class InvoiceView(BaseModel):
    invoice_id: str
    status: Literal["draft", "issued", "paid", "payment_failed", "void"]
    payment_status: Literal["none", "pending", "paid", "failed", "refunded"]
    order_id: str
    number: str | None
    lines: list[InvoiceLineView]
    subtotal: ShownAmount
    shipping_cost: ShownAmount
    total: ShownAmount
    currency: str
    due_date: date
    payment_method: PaymentMethodSummary
    shipping: ShippingView
    buyer: Buyer
    billing_address: Address
    shipping_address: Address
    seller_id: str
    seller_name: str | None
    issued_at: datetime | None
    paid_at: datetime | None
    payment_failure: PaymentFailureView | None
    voided_at: datetime | None
    """Set once the order was cancelled and the invoice voided (it keeps its number)."""
    refunded_at: datetime | None
    """Set once a charge made for a voided invoice was given back."""
    url: str | None
    """The printable document; set once the invoice is issued."""


class InvoiceList(BaseModel):
    items: list[InvoiceView]


class ConfirmedView(BaseModel):
    invoice_id: str
    number: str
    status: Literal["draft", "issued", "paid", "payment_failed", "void"]
    url: str


def invoice_view(invoice: Invoice, *, url: str) -> InvoiceView:
    def money(units: int) -> Any:
        return from_minor(units, invoice.currency)

    failure = invoice.failure
    return InvoiceView.model_validate(
        {
            "invoice_id": invoice.invoice_id,
            "status": invoice.status.value,
            "payment_status": invoice.payment_status.value,
            "order_id": invoice.order_id,
            "number": invoice.number,
            "lines": [
                {
                    "sku": line.sku,
                    "name": line.name,
                    "unit_price": money(line.unit_price),
                    "quantity": line.quantity,
                    "line_total": money(line.line_total),
                }
                for line in invoice.lines
            ],
            "subtotal": money(invoice.subtotal),
            "shipping_cost": money(invoice.shipping_cost),
            "total": money(invoice.total),
            "currency": invoice.currency,
            "due_date": invoice.due_date,
            "payment_method": dict(invoice.payment_method),
            "shipping": {
                "carrier": invoice.shipping.carrier,
                "tracking_number": invoice.shipping.tracking_number,
                "shipped_at": invoice.shipping.shipped_at,
                "shipping_cost": money(invoice.shipping_cost),
            },
            "buyer": dict(invoice.buyer),
            "billing_address": dict(invoice.billing_address),
            "shipping_address": dict(invoice.shipping_address),
            "seller_id": invoice.seller_id,
            "seller_name": invoice.seller_name,
            "issued_at": invoice.issued_at,
            "paid_at": invoice.paid_at,
            "payment_failure": (
                {
                    "reason": failure.reason,
                    "retryable": failure.retryable,
                    "attempt": failure.attempt,
                }
                if failure
                else None
            ),
            "voided_at": invoice.voided_at,
            "refunded_at": invoice.refunded_at,
            "url": url if invoice.number else None,
        }
    )

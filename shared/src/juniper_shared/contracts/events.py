"""Every event on the wire: one envelope, a `type`, and typed `data`."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from juniper_shared.contracts.common import (
    MAX_ITEMS,
    Address,
    Buyer,
    CardSummary,
    Contract,
    Currency,
    Identifier,
    InvoiceLine,
    LongText,
    OptionalText,
    OrderSnapshot,
    PaymentMethod,
    PaymentMethodSummary,
    PlacedItem,
    SellerId,
)
from juniper_shared.contracts.money import MINOR_UNITS, Amount, check_totals, to_minor

RejectReason = Literal["out_of_stock", "outside_territory", "other", "buyer_not_approved"]


class Envelope(BaseModel):
    """The JSON envelope every message carries; `event_id` is the idempotency key."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int = 1
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    producer: str
    correlation_id: str = ""
    causation_id: str | None = None
    seller_id: str
    data: Any

    key_field: ClassVar[str] = ""
    """The `data` field whose value is the Kafka key (the aggregate id)."""

    def key(self) -> str:
        value = getattr(self.data, self.key_field)
        return str(value)


# --- inbound: orders.placed ---------------------------------------------------------------


class OrderPlacedData(Contract):
    order_id: Identifier
    seller_id: SellerId
    seller_name: OptionalText | None = None
    placed_at: datetime
    currency: Currency
    buyer: Buyer
    items: Annotated[list[PlacedItem], Field(min_length=1, max_length=MAX_ITEMS)]
    shipping_address: Address
    billing_address: Address
    payment_method: PaymentMethod
    shipping_fee: Amount | None = None
    notes: LongText | None = None

    @model_validator(mode="after")
    def _amounts_fit_the_currency(self) -> OrderPlacedData:
        digits = MINOR_UNITS[self.currency]
        amounts = [item.unit_price for item in self.items]
        if self.shipping_fee is not None:
            amounts.append(self.shipping_fee)
        for amount in amounts:
            if amount != amount.quantize(Decimal(1).scaleb(-digits)):
                raise ValueError(f"{amount} has more decimals than {self.currency} allows")
        # Each price and quantity in range can still add up to a total out of range.
        check_totals(
            currency=self.currency,
            line_totals=(
                (
                    f"items[{index}].line_total",
                    to_minor(item.unit_price, self.currency) * item.quantity,
                )
                for index, item in enumerate(self.items)
            ),
            shipping=("shipping_fee", to_minor(self.shipping_fee or Decimal(0), self.currency)),
        )
        return self


class OrderPlaced(Envelope):
    type: Literal["order.placed"] = "order.placed"
    data: OrderPlacedData
    key_field: ClassVar[str] = "order_id"


# --- orders.events ------------------------------------------------------------------------


class OrderEventData(Contract):
    order: OrderSnapshot

    @property
    def order_id(self) -> str:
        return self.order.order_id


class OrderReceivedData(OrderEventData):
    """A placed order is stored and waits for the seller."""


class OrderAcceptedData(OrderEventData):
    customer_created: bool = False


class OrderRejectedData(OrderEventData):
    reason: RejectReason
    message: str = ""


class OrderSplitData(Contract):
    parent: OrderSnapshot
    new_order: OrderSnapshot
    moved_line_ids: list[str]

    @property
    def order_id(self) -> str:
        return self.parent.order_id


class OrderUpdatedData(OrderEventData):
    changed_line_ids: list[str] = []
    removed_line_ids: list[str] = []


class OrderCancelledData(OrderEventData):
    message: str = ""


class OrderExpiredData(OrderEventData):
    """A pending order the seller did not answer before its deadline; it is closed."""

    expires_at: datetime
    """The deadline it passed: `placed_at` plus the seller's `pending_order_expiry_days`."""
    split_into: list[str] = []
    """Orders split off it earlier, which live on (they pay with its card)."""


class OrderReceived(Envelope):
    type: Literal["order.received"] = "order.received"
    data: OrderReceivedData
    key_field: ClassVar[str] = "order_id"


class OrderAccepted(Envelope):
    type: Literal["order.accepted"] = "order.accepted"
    data: OrderAcceptedData
    key_field: ClassVar[str] = "order_id"


class OrderRejected(Envelope):
    type: Literal["order.rejected"] = "order.rejected"
    data: OrderRejectedData
    key_field: ClassVar[str] = "order_id"


class OrderSplit(Envelope):
    type: Literal["order.split"] = "order.split"
    data: OrderSplitData
    key_field: ClassVar[str] = "order_id"


class OrderUpdated(Envelope):
    type: Literal["order.updated"] = "order.updated"
    data: OrderUpdatedData
    key_field: ClassVar[str] = "order_id"


class OrderCancelled(Envelope):
    type: Literal["order.cancelled"] = "order.cancelled"
    data: OrderCancelledData
    key_field: ClassVar[str] = "order_id"


class OrderExpired(Envelope):
    type: Literal["order.expired"] = "order.expired"
    data: OrderExpiredData
    key_field: ClassVar[str] = "order_id"


# --- invoices.events ----------------------------------------------------------------------


class InvoiceIssuedData(Contract):
    invoice_id: str
    number: str
    order_id: str
    seller_id: str
    seller_name: str | None = None
    buyer: Buyer
    lines: list[InvoiceLine]
    subtotal: Amount
    shipping_cost: Amount
    amount: Amount
    currency: Currency
    payment_method: PaymentMethodSummary
    issued_at: datetime
    due_date: date | None = None
    url: str


class InvoicePaidData(Contract):
    invoice_id: str
    number: str
    order_id: str
    buyer: Buyer
    seller_name: str | None = None
    url: str
    amount: Amount
    currency: Currency
    paid_at: datetime
    processor_ref: str | None = None


class InvoicePaymentFailedData(Contract):
    invoice_id: str
    number: str
    order_id: str
    buyer: Buyer
    seller_name: str | None = None
    url: str
    amount: Amount
    currency: Currency
    reason: str
    retryable: bool
    attempt: int


class InvoiceIssued(Envelope):
    type: Literal["invoice.issued"] = "invoice.issued"
    data: InvoiceIssuedData
    key_field: ClassVar[str] = "invoice_id"


class InvoicePaid(Envelope):
    type: Literal["invoice.paid"] = "invoice.paid"
    data: InvoicePaidData
    key_field: ClassVar[str] = "invoice_id"


class InvoicePaymentFailed(Envelope):
    type: Literal["invoice.payment_failed"] = "invoice.payment_failed"
    data: InvoicePaymentFailedData
    key_field: ClassVar[str] = "invoice_id"


class InvoiceVoidedData(Contract):
    """An issued invoice is cancelled (its order was cancelled); it keeps its number."""

    invoice_id: str
    number: str | None = None
    order_id: str
    buyer: Buyer
    seller_name: str | None = None
    url: str
    amount: Amount
    currency: Currency
    reason: Literal["order_cancelled"] = "order_cancelled"
    voided_at: datetime


class InvoiceVoided(Envelope):
    type: Literal["invoice.voided"] = "invoice.voided"
    data: InvoiceVoidedData
    key_field: ClassVar[str] = "invoice_id"


# --- payments.events ----------------------------------------------------------------------


class PaymentSucceededData(Contract):
    invoice_id: str
    order_id: str
    attempt: int
    amount: Amount
    currency: Currency
    processor_ref: str
    card: CardSummary | None = None


class PaymentFailedData(Contract):
    invoice_id: str
    order_id: str
    attempt: int
    amount: Amount
    currency: Currency
    reason: str
    retryable: bool
    processor_ref: str | None = None


class PaymentSucceeded(Envelope):
    type: Literal["payment.succeeded"] = "payment.succeeded"
    data: PaymentSucceededData
    key_field: ClassVar[str] = "invoice_id"


class PaymentFailed(Envelope):
    type: Literal["payment.failed"] = "payment.failed"
    data: PaymentFailedData
    key_field: ClassVar[str] = "invoice_id"


class PaymentRefundedData(Contract):
    """A successful charge was given back (its invoice was voided)."""

    invoice_id: str
    order_id: str
    attempt: int
    amount: Amount
    currency: Currency
    processor_ref: str
    refund_ref: str
    reason: str


class PaymentRefunded(Envelope):
    type: Literal["payment.refunded"] = "payment.refunded"
    data: PaymentRefundedData
    key_field: ClassVar[str] = "invoice_id"


EVENT_TYPES: dict[str, type[Envelope]] = {
    model.model_fields["type"].default: model
    for model in (
        OrderPlaced,
        OrderReceived,
        OrderAccepted,
        OrderRejected,
        OrderSplit,
        OrderUpdated,
        OrderCancelled,
        OrderExpired,
        InvoiceIssued,
        InvoicePaid,
        InvoicePaymentFailed,
        InvoiceVoided,
        PaymentSucceeded,
        PaymentFailed,
        PaymentRefunded,
    )
}

"""The HTTP bodies of the orders API (the contract's field names)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from juniper_shared.contracts.common import Email, Identifier, LongText, Quantity, ShortText
from juniper_shared.contracts.money import from_minor
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from orders.domain.customer import Customer
from orders.domain.expiry import MAX_EXPIRY_DAYS, MIN_EXPIRY_DAYS
from orders.domain.order import Order, Status

MAX_LINES_PER_REQUEST = 500


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InvoiceSummary(BaseModel):
    invoice_id: str
    number: str
    status: str
    url: str


class OrderRow(BaseModel):
    order_id: str
    status: str
    buyer: dict[str, Any]
    customer_id: str | None
    placed_at: datetime
    currency: str
    total: str
    invoice: InvoiceSummary | None
    payment_status: Literal["none", "pending", "paid", "failed"]
    split_from: str | None
    expires_at: datetime | None = None
    """While pending: when the order expires unless the seller answers."""


class OrderItem(BaseModel):
    line_id: str
    sku: str
    name: str
    unit_price: str
    quantity: int
    line_total: str


class OrderDetails(OrderRow):
    items: list[OrderItem]
    subtotal: str
    shipping_fee: str
    shipping_address: dict[str, Any]
    billing_address: dict[str, Any]
    payment_method: dict[str, Any]
    split_into: list[str]
    rejection: dict[str, str] | None
    notes: str | None
    history: list[dict[str, Any]]
    version: int


class OrderList(BaseModel):
    items: list[OrderRow]
    total_count: int
    page: int
    page_size: int


class NewCustomerBody(Body):
    name: ShortText
    email: Email


class CustomerChoiceBody(Body):
    create: NewCustomerBody | None = None
    associate: Identifier | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CustomerChoiceBody:
        if (self.create is None) == (self.associate is None):
            raise ValueError("give exactly one of `create` or `associate`")
        return self


class AcceptBody(Body):
    customer: CustomerChoiceBody | None = None


class RejectBody(Body):
    reason: Literal["out_of_stock", "outside_territory", "other"]
    message: LongText = ""


class CancelBody(Body):
    message: LongText = ""


LineIds = Annotated[list[Identifier], Field(min_length=1, max_length=MAX_LINES_PER_REQUEST)]


class LineIdsBody(Body):
    line_ids: LineIds


class QuantityChange(Body):
    line_id: Identifier
    quantity: Quantity


class QuantitiesBody(Body):
    items: Annotated[list[QuantityChange], Field(min_length=1, max_length=MAX_LINES_PER_REQUEST)]


class SellerSettingsBody(Body):
    """A PUT changes the settings it names and keeps the others."""

    buyer_access_requires_approval: StrictBool | None = None
    pending_order_expiry_days: (
        Annotated[int, Field(ge=MIN_EXPIRY_DAYS, le=MAX_EXPIRY_DAYS, strict=True)] | None
    ) = None

    @model_validator(mode="before")
    @classmethod
    def no_nulls(cls, body: Any) -> Any:
        """A setting left out is kept; one sent as null is not a value (422, not "keep")."""
        if isinstance(body, dict):
            for name, value in body.items():
                if value is None:
                    raise ValueError(f"{name} must not be null")
        return body


class SellerSettingsView(BaseModel):
    buyer_access_requires_approval: bool
    pending_order_expiry_days: int
    """A pending order not accepted or rejected within this many days of being placed expires."""


class CustomerBody(Body):
    name: ShortText
    email: Email
    buyer_ids: Annotated[list[Identifier], Field(max_length=100)] = []


class CustomerView(BaseModel):
    customer_id: str
    name: str
    email: str
    buyer_ids: list[str]


class CustomerList(BaseModel):
    items: list[CustomerView]
    total_count: int
    page: int
    page_size: int


def _money(order: Order, units: int) -> str:
    return str(from_minor(units, order.currency))


def order_row(order: Order) -> OrderRow:
    return OrderRow(
        order_id=order.order_id,
        status=order.status.value,
        buyer=dict(order.buyer),
        customer_id=order.customer_id,
        placed_at=order.placed_at,
        currency=order.currency,
        total=_money(order, order.total),
        invoice=InvoiceSummary(**vars(order.invoice)) if order.invoice else None,
        payment_status=order.payment_status.value,
        split_from=order.split_from,
        expires_at=order.expires_at if order.status is Status.PENDING else None,
    )


def order_details(order: Order) -> OrderDetails:
    return OrderDetails(
        **order_row(order).model_dump(),
        items=[
            OrderItem(
                line_id=line.line_id,
                sku=line.sku,
                name=line.name,
                unit_price=_money(order, line.unit_price),
                quantity=line.quantity,
                line_total=_money(order, line.line_total),
            )
            for line in order.lines
        ],
        subtotal=_money(order, order.subtotal),
        shipping_fee=_money(order, order.shipping_fee),
        shipping_address=dict(order.shipping_address),
        billing_address=dict(order.billing_address),
        payment_method=dict(order.payment_method),
        split_into=list(order.split_into),
        rejection=dict(order.rejection) if order.rejection else None,
        notes=order.notes,
        history=[{"at": entry.at, "type": entry.type, **entry.details} for entry in order.history],
        version=order.version,
    )


def customer_view(customer: Customer) -> CustomerView:
    return CustomerView(
        customer_id=customer.customer_id,
        name=customer.name,
        email=customer.email,
        buyer_ids=list(customer.buyer_ids),
    )

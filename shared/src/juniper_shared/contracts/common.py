"""Value objects that several events share."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from juniper_shared.contracts.money import MINOR_UNITS, Amount

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
OptionalText = Annotated[str, StringConstraints(max_length=200, strip_whitespace=True)]
LongText = Annotated[str, StringConstraints(max_length=2000)]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]
Email = Annotated[
    str,
    StringConstraints(
        max_length=254, pattern=r"^[^@\s\r\n<>\",]+@[^@\s\r\n<>\",]+\.[^@\s\r\n<>\",]+$"
    ),
]
Currency = Literal[
    "USD",
    "CAD",
    "EUR",
    "GBP",
    "AUD",
    "NZD",
    "CHF",
    "SEK",
    "NOK",
    "DKK",
    "MXN",
    "JPY",
    "KRW",
    "KWD",
    "BHD",
]
assert set(get_args(Currency)) == set(MINOR_UNITS), "every currency needs its minor units"
Quantity = Annotated[int, Field(ge=1, le=100_000)]

MAX_ITEMS = 500
"""Most lines one order may carry; larger orders are refused at the door."""


class Contract(BaseModel):
    """Base of every wire model: unknown fields are kept out, values are immutable."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Buyer(Contract):
    id: Identifier
    name: ShortText
    email: Email
    company: OptionalText = ""


class Address(Contract):
    name: ShortText
    line1: ShortText
    line2: OptionalText | None = None
    city: ShortText
    region: OptionalText = ""
    postal_code: Annotated[str, StringConstraints(max_length=20, strip_whitespace=True)]
    country: Annotated[str, StringConstraints(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")]


class CreditCard(Contract):
    """A card as checkout hands it over: a processor token, never a card number."""

    type: Literal["credit_card"]
    card_token: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    brand: Annotated[str, StringConstraints(max_length=30)]
    last4: Annotated[str, StringConstraints(pattern=r"^\d{4}$")]


class NetTerms(Contract):
    type: Literal["net_terms"]
    days: Annotated[int, Field(ge=0, le=365)]


class OtherPayment(Contract):
    type: Literal["other"]


PaymentMethod = Annotated[CreditCard | NetTerms | OtherPayment, Field(discriminator="type")]


class CardSummary(Contract):
    """A card as every event after checkout shows it: brand and last four digits only."""

    type: Literal["credit_card"]
    brand: str
    last4: str


PaymentMethodSummary = Annotated[CardSummary | NetTerms | OtherPayment, Field(discriminator="type")]


def summarize_payment_method(
    method: CreditCard | NetTerms | OtherPayment,
) -> CardSummary | NetTerms | OtherPayment:
    """The payment method without its secret token."""
    if isinstance(method, CreditCard):
        return CardSummary(type="credit_card", brand=method.brand, last4=method.last4)
    return method


class PlacedItem(Contract):
    sku: ShortText
    name: ShortText
    unit_price: Amount
    quantity: Quantity


class OrderLine(Contract):
    line_id: str
    sku: str
    name: str
    unit_price: Amount
    quantity: int
    line_total: Amount


class OrderSnapshot(Contract):
    """The order as it stands after an event: everything a consumer needs without calling back."""

    order_id: str
    seller_id: str
    seller_name: str | None = None
    status: Literal["pending", "approved", "rejected", "cancelled", "expired"]
    version: int
    placed_at: datetime
    currency: Currency
    buyer: Buyer
    customer_id: str | None = None
    items: list[OrderLine]
    subtotal: Amount
    shipping_fee: Amount
    total: Amount
    shipping_address: Address
    billing_address: Address
    payment_method: PaymentMethodSummary
    split_from: str | None = None


class InvoiceLine(Contract):
    sku: str
    name: str
    unit_price: Amount
    quantity: int
    line_total: Amount


class Shipping(Contract):
    carrier: ShortText
    tracking_number: ShortText
    shipped_at: date
    shipping_cost: Amount

"""Value objects that several events share."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
)

from juniper_shared.contracts.money import MINOR_UNITS, Amount

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_IN_LONG_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _no_control(value: object) -> object:
    if isinstance(value, str) and _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _no_control_but_lines(value: object) -> object:
    if isinstance(value, str) and _CONTROL_IN_LONG_TEXT.search(value):
        raise ValueError("must not contain control characters (line breaks and tabs allowed)")
    return value


NoControl = BeforeValidator(_no_control)
"""No C0/C1 control character (NUL included) and no lone surrogate, checked before any
whitespace is stripped: the database refuses some, and none belongs in a name, an email or an
id."""

ShortText = Annotated[
    str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True), NoControl
]
OptionalText = Annotated[str, StringConstraints(max_length=200, strip_whitespace=True), NoControl]
LongText = Annotated[
    str, StringConstraints(max_length=2000), BeforeValidator(_no_control_but_lines)
]
"""A message or notes: up to 2,000 characters; line breaks and tabs are its only controls."""
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]
SellerId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
"""A seller as tokens name it (juniper_shared.auth.SELLER_ID): an order for any other id
could never be seen by its seller."""
Email = Annotated[
    str,
    StringConstraints(
        max_length=254, pattern=r"^[^@\s\r\n<>\",]+@[^@\s\r\n<>\",]+\.[^@\s\r\n<>\",]+$"
    ),
    NoControl,
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
Quantity = Annotated[int, Strict(), Field(ge=1, le=100_000)]
"""A JSON integer (never `true`, `1.0` or `"1"`)."""

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
    postal_code: Annotated[str, StringConstraints(max_length=20, strip_whitespace=True), NoControl]
    country: Annotated[str, StringConstraints(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")]


class CreditCard(Contract):
    """A card as checkout hands it over: a processor token, never a card number."""

    type: Literal["credit_card"]
    card_token: Annotated[str, StringConstraints(min_length=1, max_length=200), NoControl]
    brand: Annotated[str, StringConstraints(max_length=30), NoControl]
    last4: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]


class NetTerms(Contract):
    type: Literal["net_terms"]
    days: Annotated[int, Strict(), Field(ge=0, le=365)]


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


def _date_string(value: object) -> object:
    # pydantic would read a JSON number as a Unix time: a date on the wire is "YYYY-MM-DD".
    if not isinstance(value, str | date):
        raise ValueError('a date is a string such as "2026-11-27"')
    return value


class Shipping(Contract):
    carrier: ShortText
    tracking_number: ShortText
    shipped_at: Annotated[date, BeforeValidator(_date_string)]
    shipping_cost: Amount

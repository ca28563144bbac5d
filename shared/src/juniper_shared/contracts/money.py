"""Money on the wire: a decimal string in the currency's minor units, never a float."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

# ISO-4217 minor units for the currencies the marketplace settles in; anything else is refused.
MINOR_UNITS: dict[str, int] = {
    "USD": 2,
    "CAD": 2,
    "EUR": 2,
    "GBP": 2,
    "AUD": 2,
    "NZD": 2,
    "CHF": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "MXN": 2,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "BHD": 3,
}

MAX_AMOUNT = Decimal("1000000000")


def _parse_amount(value: Any) -> Decimal:
    # Floats are refused outright: a binary float cannot carry an exact price.
    if isinstance(value, bool | float):
        raise ValueError('money must be a decimal string such as "125.50", not a float')
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except ArithmeticError as error:
            raise ValueError(f"not a decimal amount: {value!r}") from error
    else:
        raise ValueError("money must be a decimal string")
    if not amount.is_finite():
        raise ValueError("money must be a finite amount")
    if amount < 0:
        raise ValueError("money cannot be negative")
    if amount >= MAX_AMOUNT:
        raise ValueError("amount is too large")
    if amount.as_tuple().exponent < -3:  # type: ignore[operator]
        raise ValueError("amount has more decimals than any currency allows")
    return amount


Amount = Annotated[
    Decimal,
    BeforeValidator(_parse_amount),
    PlainSerializer(lambda amount: str(amount), return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,9}(\.\d{1,3})?$", "examples": ["125.50"]}),
]
"""A non-negative decimal amount; serialized as a string."""


def minor_units(currency: str) -> int:
    """Digits after the decimal point for `currency` (ISO-4217)."""
    return MINOR_UNITS[currency]


def to_minor(amount: Decimal, currency: str) -> int:
    """Exact integer count of minor units (cents); refuses amounts finer than the currency."""
    scaled = amount.scaleb(minor_units(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more decimals than {currency} allows")
    return int(scaled)


def from_minor(units: int, currency: str) -> Decimal:
    """Decimal amount, quantized to the currency's minor units, from integer minor units."""
    digits = minor_units(currency)
    return Decimal(units).scaleb(-digits).quantize(Decimal(1).scaleb(-digits))

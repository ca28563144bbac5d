"""Money on the wire: a decimal string in the currency's minor units, never a float."""

from __future__ import annotations

import re
from collections.abc import Iterable
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
"""Every amount (a price, a line total, a subtotal, shipping, a total) is below this."""

MAX_DECIMALS = max(MINOR_UNITS.values())

_AMOUNT = re.compile(rf"[0-9]+(\.[0-9]{{1,{MAX_DECIMALS}}})?")
"""The only spelling of an amount: ASCII digits, a dot and up to three decimals (the currency
then decides how many it allows)."""


def _parse_amount(value: Any) -> Decimal:
    # A Decimal comes from our own code; from the wire only a string such as "125.50" passes:
    # no float or JSON number, no sign, exponent, spaces, underscores or non-ASCII digits.
    if isinstance(value, Decimal):
        amount = value
        if not amount.is_finite() or amount.is_signed():
            raise ValueError("money must be a finite amount, not negative")
    elif isinstance(value, str):
        if _AMOUNT.fullmatch(value) is None:
            raise ValueError(
                f'money must be a decimal string such as "125.50" (digits, up to '
                f"{MAX_DECIMALS} decimals), not {value[:40]!r}"
            )
        amount = Decimal(value)
    else:
        raise ValueError('money must be a decimal string such as "125.50"')
    if amount >= MAX_AMOUNT:
        raise ValueError(f"amount must be below {MAX_AMOUNT}")
    if amount.as_tuple().exponent < -MAX_DECIMALS:  # type: ignore[operator]
        raise ValueError("amount has more decimals than any currency allows")
    return amount


Amount = Annotated[
    Decimal,
    BeforeValidator(_parse_amount),
    # "f": never an exponent ("1E+3"), which the other side would refuse.
    PlainSerializer(lambda amount: format(amount, "f"), return_type=str, when_used="always"),
    WithJsonSchema(
        {"type": "string", "pattern": r"^[0-9]{1,9}(\.[0-9]{1,3})?$", "examples": ["125.50"]}
    ),
]
"""A non-negative decimal amount; serialized as a string."""

ShownAmount = Annotated[
    Decimal,
    PlainSerializer(lambda amount: format(amount, "f"), return_type=str, when_used="always"),
    WithJsonSchema(
        {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,3})?$", "examples": ["125.50"]}
    ),
]
"""An amount in an answer: what is stored, shown as it is (a read never fails on a record that
an older version stored past today's limits)."""


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


def max_minor(currency: str) -> int:
    """MAX_AMOUNT in the currency's minor units: every amount stays below it."""
    return int(MAX_AMOUNT.scaleb(minor_units(currency)))


class AmountOutOfRange(ValueError):
    """An amount (often a sum of amounts each in range) at or past MAX_AMOUNT; `field` names it."""

    def __init__(self, field: str, units: int, currency: str) -> None:
        amount = from_minor(units, currency)
        super().__init__(f"{field}: {amount} {currency} is not below {MAX_AMOUNT}")
        self.field = field


def check_totals(
    *,
    currency: str,
    line_totals: Iterable[tuple[str, int]],
    shipping: tuple[str, int],
) -> None:
    """The money invariants of an order or an invoice, in minor units: every line total, the
    subtotal, the shipping and the total are at least 0 and below MAX_AMOUNT.

    `line_totals` are (field name, amount) pairs, `shipping` one such pair; the error names the
    first amount out of range."""
    cap = max_minor(currency)
    subtotal = 0
    for field, units in line_totals:
        if not 0 <= units < cap:
            raise AmountOutOfRange(field, units, currency)
        subtotal += units
    if subtotal >= cap:
        raise AmountOutOfRange("subtotal", subtotal, currency)
    name, units = shipping
    if not 0 <= units < cap:
        raise AmountOutOfRange(name, units, currency)
    if subtotal + units >= cap:
        raise AmountOutOfRange("total", subtotal + units, currency)

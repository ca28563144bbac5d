"""How amounts, times and codes read on screen."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

_SYMBOLS = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "CAD": "CA$",
    "AUD": "A$",
    "JPY": "¥",
    "CHF": "CHF ",
}
_NO_MINOR_UNITS = {"JPY", "KRW", "ISK", "CLP", "VND"}

STATUS_LABELS = {
    "pending": "Pending",
    "approved": "Approved",
    "rejected": "Rejected",
    "cancelled": "Cancelled",
    "none": "No invoice",
    "paid": "Paid",
    "failed": "Payment failed",
    "payment_failed": "Payment failed",
    "draft": "Draft",
    "issued": "Issued",
    "void": "Void",
    "refunded": "Refunded",
    "succeeded": "Succeeded",
    "sent": "Sent",
    # history entries
    "payment_paid": "Payment received",
    "payment_pending": "Payment pending",
    "split": "Split",
    "split_from": "Split from",
    "invoiced": "Invoiced",
}

REJECT_REASONS = {
    "out_of_stock": "Out of stock",
    "outside_territory": "Buyer outside my territory",
    "other": "Other",
    "buyer_not_approved": "Buyer not approved",
}


def money(amount: Any, currency: str) -> str:
    """`1234.5`, `USD` -> `$1,234.50`; an unknown currency keeps its code: `1,234.50 SEK`."""
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return f"{amount} {currency}"
    places = 0 if currency in _NO_MINOR_UNITS else 2
    sign = "-" if value < 0 else ""
    text = f"{abs(value):,.{places}f}"
    symbol = _SYMBOLS.get(currency)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"


def when(value: Any) -> str:
    """An ISO-8601 time as `6 Dec 2026, 04:01 UTC`."""
    moment = _parse(value)
    if moment is None:
        return str(value or "")
    return moment.astimezone(UTC).strftime("%-d %b %Y, %H:%M UTC")


def iso(value: Any) -> str:
    moment = _parse(value)
    return moment.astimezone(UTC).isoformat() if moment else ""


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def label(code: Any) -> str:
    text = str(code or "")
    return (
        STATUS_LABELS.get(text) or REJECT_REASONS.get(text) or text.replace("_", " ").capitalize()
    )


def payment_method(method: dict[str, Any] | None) -> str:
    if not method:
        return "—"
    kind = method.get("type")
    if kind == "credit_card":
        brand = str(method.get("brand") or "card").title()
        return f"{brand} card ending {method.get('last4', '••••')}"
    if kind == "net_terms":
        return f"Net {method.get('days')} terms"
    return "Other (arranged with the buyer)"


def address(value: dict[str, Any] | None) -> list[str]:
    if not value:
        return []
    city = " ".join(
        part for part in (value.get("city"), value.get("region"), value.get("postal_code")) if part
    )
    lines = [value.get("name"), value.get("line1"), value.get("line2"), city, value.get("country")]
    return [str(line) for line in lines if line]

"""What a seller reads: amounts in their currency, times in UTC, one key per intention."""

from __future__ import annotations

from console.entrypoints.formatting import label, money, payment_method, when
from console.entrypoints.session import Seller, intent_key


def test_amounts_are_formatted_for_their_currency() -> None:
    assert money("1234.5", "USD") == "$1,234.50"
    assert money("-3.10", "EUR") == "-€3.10"
    assert money("1200", "JPY") == "¥1,200"
    assert money("9.99", "SEK") == "9.99 SEK"


def test_times_and_codes_read_as_words() -> None:
    assert when("2026-12-06T04:01:00+00:00") == "6 Dec 2026, 04:01 UTC"
    assert label("payment_failed") == "Payment failed"
    assert label("quantities_changed") == "Quantities changed"
    assert label("payment_paid") == "Payment received"
    assert payment_method({"type": "credit_card", "brand": "visa", "last4": "4242"}) == (
        "Visa card ending 4242"
    )
    assert payment_method({"type": "net_terms", "days": 30}) == "Net 30 terms"


def test_one_idempotency_key_per_intention() -> None:
    seller = Seller("juniper-pottery", "token")
    double_click = intent_key(seller, "ord-1", 3, "accept", None)
    assert double_click == intent_key(seller, "ord-1", 3, "accept", None)
    assert double_click != intent_key(seller, "ord-1", 4, "accept", None)  # the order changed
    assert double_click != intent_key(Seller("other", "token"), "ord-1", 3, "accept", None)
    reject = {"reason": "other", "message": "a"}
    assert intent_key(seller, "ord-1", 3, "reject", reject) != intent_key(
        seller, "ord-1", 3, "reject", {**reject, "message": "b"}
    )

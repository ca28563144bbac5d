"""Compound ids: a separator inside a value never makes two tenants' ids equal."""

from __future__ import annotations

from juniper_shared.keys import compound_id


def test_values_holding_the_separators_stay_apart() -> None:
    cases = [
        ("a", "b:c"),
        ("a:b", "c"),
        ('a","b', "c"),
        ("a", '","b'),
        ("a\\", "b"),
        ("a", "\\b"),
    ]
    assert len({compound_id(*case) for case in cases}) == len(cases)
    assert compound_id("seller", "POST", "/v1/orders/o:1/accept", "k") != compound_id(
        "seller", "POST", "/v1/orders/o", "1/accept:k"
    )

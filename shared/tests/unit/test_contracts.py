"""The wire contracts: every event survives a round trip, bad input is refused, schemas are pinned."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from juniper_shared.contracts.events import EVENT_TYPES, OrderPlaced
from juniper_shared.contracts.money import from_minor, to_minor
from juniper_shared.contracts.registry import (
    ORDERS_EVENTS,
    ORDERS_PLACED,
    TOPICS,
    ForgedEvent,
    PoisonMessage,
    UnknownEventType,
    encode,
)
from juniper_testkit import placed_order, placed_order_data

SNAPSHOT = Path(__file__).parent / "snapshots" / "event_schemas.json"


def test_a_placed_order_round_trips_through_the_wire_unchanged() -> None:
    event = placed_order(shipping_fee="15.00", notes="Leave at the back door")
    decoded = ORDERS_PLACED.decode(encode(event))
    assert decoded == event
    assert isinstance(decoded, OrderPlaced)
    assert decoded.data.items[0].unit_price == Decimal("12.50")
    assert json.loads(encode(event))["data"]["items"][0]["unit_price"] == "12.50"


def test_every_topic_has_a_single_writer_and_its_own_event_types() -> None:
    seen: set[str] = set()
    for topic in TOPICS:
        assert topic.writer
        assert topic.dlq == f"{topic.name}.dlq"
        assert not seen & set(topic.event_types), "an event type belongs to one topic"
        seen |= set(topic.event_types)
    assert seen == set(EVENT_TYPES)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00\xff", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"data": {}}', "no type"),
        (
            b'{"type": "order.placed", "version": 99, "seller_id": "s", "producer": "p", "data": {}}',
            "unsupported version",
        ),
        (
            b'{"type": "order.placed", "version": "1", "seller_id": "s", "producer": "p", "data": {}}',
            "invalid version",
        ),
        (
            b'{"type": "order.placed", "seller_id": "s", "producer": "p", "data": {}}',
            "invalid event",
        ),
        (b"x" * 1_000_001, "exceeds"),
    ],
)
def test_malformed_messages_are_poison_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        ORDERS_PLACED.decode(raw)


def test_an_event_type_the_topic_does_not_carry_is_skipped_not_poison() -> None:
    with pytest.raises(UnknownEventType):
        ORDERS_EVENTS.decode(b'{"type": "order.teleported", "data": {}}')


@pytest.mark.parametrize(
    "overrides",
    [
        {"currency": "XXX"},
        {"items": []},
        {"items": [{"sku": "A", "name": "A", "unit_price": 12.5, "quantity": 1}]},
        {"items": [{"sku": "A", "name": "A", "unit_price": "-1.00", "quantity": 1}]},
        {"items": [{"sku": "A", "name": "A", "unit_price": "1.00", "quantity": 0}]},
        {"payment_method": {"type": "bitcoin"}},
        {"buyer": {"id": "b", "name": "B", "email": "not-an-email"}},
        {"order_id": "has spaces"},
        *(
            {"items": [{"sku": "A", "name": "A", "unit_price": price, "quantity": 1}]}
            for price in (" 1.00", "+1.00", "1_000", "\u0661.00", "\uff11.00", "1e3", "-0", 1)
        ),
        {"items": [{"sku": "A", "name": "A", "unit_price": "1.00", "quantity": True}]},
        {"items": [{"sku": "A", "name": "A", "unit_price": "1.00", "quantity": "1"}]},
        {"items": [{"sku": "A", "name": "A", "unit_price": "999999999.99", "quantity": 2}]},
        {"buyer": {"id": "b", "name": "B\x00", "email": "b@example.com"}},
        {"notes": "fragile\x00"},
        {"seller_id": "Seller_A"},
        {"seller_id": "seller:a"},
    ],
)
def test_invalid_placed_orders_are_refused(overrides: dict[str, Any]) -> None:
    raw = json.dumps(
        {
            "type": "order.placed",
            "seller_id": "s",
            "producer": "checkout",
            "data": placed_order_data(**overrides),
        }
    ).encode()
    with pytest.raises(PoisonMessage):
        ORDERS_PLACED.decode(raw)


def order_snapshot(seller_id: str) -> dict[str, Any]:
    data = placed_order_data(seller_id=seller_id)
    line = {"sku": "MUG-1", "name": "Mug", "unit_price": "12.50", "quantity": 4}
    return {
        **{key: data[key] for key in ("order_id", "seller_id", "placed_at", "currency", "buyer")},
        "status": "pending",
        "version": 2,
        "items": [{**line, "line_id": "l1", "line_total": "50.00"}],
        "subtotal": "50.00",
        "shipping_fee": "0.00",
        "total": "50.00",
        "shipping_address": data["shipping_address"],
        "billing_address": data["shipping_address"],
        "payment_method": {"type": "credit_card", "brand": "visa", "last4": "4242"},
    }


def orders_event(event_type: str, seller_id: str, data: dict[str, Any]) -> bytes:
    envelope = {"type": event_type, "seller_id": seller_id, "producer": "orders", "data": data}
    return json.dumps(envelope).encode()


def test_an_event_is_applied_only_for_the_seller_of_every_order_it_carries() -> None:
    mine, theirs = order_snapshot("seller-a"), order_snapshot("seller-b")
    split = {"parent": mine, "new_order": mine, "moved_line_ids": ["l1"]}
    assert ORDERS_EVENTS.decode(orders_event("order.split", "seller-a", split))

    with pytest.raises(ForgedEvent, match="names seller 'seller-b'"):
        ORDERS_EVENTS.decode(orders_event("order.accepted", "seller-a", {"order": theirs}))
    with pytest.raises(ForgedEvent, match="names seller 'seller-b'"):
        ORDERS_EVENTS.decode(
            orders_event("order.split", "seller-a", {**split, "new_order": theirs})
        )
    with pytest.raises(ForgedEvent, match="written by 'orders' only"):
        ORDERS_EVENTS.decode(
            orders_event("order.accepted", "seller-a", {"order": mine}).replace(
                b'"orders"', b'"checkout"'
            )
        )


@given(st.integers(min_value=0, max_value=10**11), st.sampled_from(["USD", "JPY", "KWD"]))
def test_minor_units_round_trip_exactly(units: int, currency: str) -> None:
    assert to_minor(from_minor(units, currency), currency) == units


def test_amounts_finer_than_the_currency_are_refused() -> None:
    with pytest.raises(ValueError, match="more decimals"):
        to_minor(Decimal("1.005"), "USD")


def current_schemas() -> dict[str, Any]:
    return {
        name: model.model_json_schema(mode="serialization")
        for name, model in sorted(EVENT_TYPES.items())
    }


def test_event_schemas_match_the_snapshot() -> None:
    """A change to any event's schema must be deliberate: regenerate with UPDATE_SNAPSHOTS=1."""
    current = current_schemas()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), (
        "event schemas changed: additive changes are fine within a version (regenerate the "
        "snapshot with UPDATE_SNAPSHOTS=1); breaking ones need a new version and an upcaster"
    )


def test_the_committed_asyncapi_documents_are_generated_from_the_code() -> None:
    """`make asyncapi` output is committed; it must not drift from the contracts."""
    from juniper_shared.contracts.asyncapi import SERVICES, document

    docs = Path(__file__).parents[3] / "docs" / "asyncapi"
    for name in (*SERVICES, None):
        committed = json.loads((docs / f"{name or 'all'}.json").read_text())
        assert committed == json.loads(json.dumps(document(name), sort_keys=True)), (
            f"docs/asyncapi/{name or 'all'}.json is stale: run `make asyncapi`"
        )


CAP = 100_000_000_000
"""1,000,000,000.00 USD in cents."""


@given(
    lines=st.lists(
        st.tuples(st.integers(0, CAP - 1), st.integers(1, 100_000)), min_size=1, max_size=6
    ),
    shipping=st.integers(0, CAP - 1),
)
def test_a_placed_order_is_valid_exactly_when_its_totals_stay_below_the_cap(
    lines: list[tuple[int, int]], shipping: int
) -> None:
    """Every price, quantity and fee in range; only their sums decide."""
    items = [
        {"sku": f"S{n}", "name": "x", "unit_price": str(from_minor(price, "USD")), "quantity": q}
        for n, (price, q) in enumerate(lines)
    ]
    data = placed_order_data(items=items, shipping_fee=str(from_minor(shipping, "USD")))
    within = all(p * q < CAP for p, q in lines) and sum(p * q for p, q in lines) + shipping < CAP
    raw = json.dumps(
        {
            "type": "order.placed",
            "seller_id": data["seller_id"],
            "producer": "checkout",
            "data": data,
        }
    ).encode()
    if within:
        assert ORDERS_PLACED.decode(raw).data.items[0].quantity == lines[0][1]
    else:
        with pytest.raises(PoisonMessage, match=r"line_total|subtotal|total"):
            ORDERS_PLACED.decode(raw)

"""Hypothesis strategies for hostile Kafka messages, built from a good event of the topic."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .support import Record

OVERSIZED = 1_000_001 + 64
"""Just above what `decode` accepts (1,000,000 bytes), under Kafka's default 1 MiB limit."""


@dataclass(frozen=True)
class Bad:
    """A hostile message and what a consumer must do with it."""

    kind: str
    key: bytes | None
    value: bytes | None
    header_type: str | None
    poison: bool
    """True: dead-lettered. False: a well-formed unknown type, skipped and counted."""

    def record(self) -> Record:
        headers = [("type", self.header_type.encode())] if self.header_type is not None else []
        return (self.key, self.value, headers)


json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _wrong_type(value: Any) -> st.SearchStrategy[Any]:
    """A value of another JSON type than `value`, one no field of that type accepts."""
    if isinstance(value, dict):
        return st.lists(json_scalars, max_size=3) | st.text(max_size=10) | st.integers()
    return st.dictionaries(st.text(min_size=1, max_size=5), json_scalars, min_size=0, max_size=3)


def hostile(
    good: dict[str, Any], *, key: bytes, event_type: str
) -> dict[str, st.SearchStrategy[Bad]]:
    """Malformed, truncated, oversized, wrong-type, unknown-version and unknown-type variants,
    and forged ones: another producer than the topic's writer, or data naming another seller
    than the envelope (where the data names one)."""
    raw = json.dumps(good).encode()
    header = st.sampled_from([event_type, None])

    def bad(kind: str, value: Any, *, poison: bool = True) -> st.SearchStrategy[Bad]:
        return st.builds(Bad, st.just(kind), st.just(key), value, header, st.just(poison))

    def encoded(document: Any) -> bytes:
        return json.dumps(document).encode()

    not_json = st.binary(max_size=200).filter(lambda data: not _is_json_object(data))
    truncated = st.integers(min_value=0, max_value=len(raw) - 1).map(lambda cut: raw[:cut])
    not_object = json_values.filter(lambda value: not isinstance(value, dict)).map(encoded)
    fields = sorted(good) + [f"data.{name}" for name in sorted(good["data"])]

    @st.composite
    def wrong_field(draw: st.DrawFn) -> bytes:
        path = draw(st.sampled_from([name for name in fields if name != "type"]))
        document = json.loads(raw)
        holder = document["data"] if path.startswith("data.") else document
        name = path.removeprefix("data.")
        holder[name] = draw(_wrong_type(holder[name]))
        return encoded(document)

    versions = (
        st.integers(min_value=2, max_value=10**9)
        | st.integers(max_value=0)
        | st.sampled_from(["1", 1.5, True, None, [1]])
    )
    unknown_version = versions.map(lambda version: encoded({**good, "version": version}))
    no_type = st.sampled_from([None, "", 7, ["order.placed"]]).map(
        lambda kind: encoded({**good, "type": kind})
    )
    oversized = st.just(encoded({**good, "padding": "x" * OVERSIZED}))
    unknown_names = st.from_regex(r"\A[a-z]{1,12}\.[a-z_]{1,12}\Z").filter(
        lambda name: not name.startswith(("order.", "invoice.", "payment."))
    )

    @st.composite
    def unknown_type(draw: st.DrawFn) -> Bad:
        name = draw(unknown_names)
        value = encoded({**good, "type": name, "data": draw(json_values)})
        return Bad("unknown_type", key, value, name, poison=False)

    producers = st.sampled_from([*PRINCIPALS, "", "chaos", good["producer"].upper()]).filter(
        lambda producer: producer != good["producer"]
    )
    forged_producer = producers.map(lambda producer: encoded({**good, "producer": producer}))
    other_sellers = st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,20}\Z").filter(
        lambda seller: seller != good["seller_id"]
    )
    forged_seller = other_sellers.map(lambda seller: encoded({**good, "seller_id": seller}))
    forged = {"forged_producer": bad("forged_producer", forged_producer)}
    if _names_a_seller(good["data"]):
        forged["forged_seller"] = bad("forged_seller", forged_seller)

    placed = _placed_order_kinds(good, bad) if event_type == "order.placed" else {}
    return (
        forged
        | placed
        | {
            "not_json": bad("not_json", not_json),
            "truncated": bad("truncated", truncated),
            "not_an_object": bad("not_an_object", not_object),
            "wrong_type": bad("wrong_type", wrong_field()),
            "unknown_version": bad("unknown_version", unknown_version),
            "no_type": bad("no_type", no_type),
            "oversized": bad("oversized", oversized),
            "null_value": bad("null_value", st.none()),
            "unknown_type": unknown_type(),
        }
    )


PRINCIPALS = ("checkout", "orders", "invoicing", "payments", "notifications", "ops")


def _names_a_seller(data: dict[str, Any]) -> bool:
    """Whether the event's data names its seller (itself or in an order it carries)."""
    parts = [data, *(value for value in data.values() if isinstance(value, dict))]
    return any("seller_id" in part for part in parts)


CAP_CENTS = 100_000_000_000
"""1,000,000,000.00: every amount of an order (line total, subtotal, total) stays below it."""

CONTROL_CHARACTERS = st.sampled_from(
    [chr(code) for code in range(0x20) if chr(code) not in "\t\n\r"] + ["\x7f", "\x85", "\ud800"]
)
"""Never in any string of an order (line breaks and tabs are allowed in `notes` only)."""

TEXT_FIELDS = (
    "buyer.name",
    "buyer.email",
    "buyer.company",
    "items.0.sku",
    "items.0.name",
    "shipping_address.name",
    "shipping_address.line1",
    "shipping_address.city",
    "billing_address.postal_code",
    "payment_method.card_token",
    "seller_name",
    "notes",
)


def _placed_order_kinds(good: dict[str, Any], bad: Any) -> dict[str, st.SearchStrategy[Bad]]:
    """Orders whose every field is in range but whose amounts add up past the cap, and orders
    with a control character in a string: both are invalid at decode."""

    def encoded(document: Any) -> bytes:
        return json.dumps(document).encode()

    def cents(units: int) -> str:
        return f"{units // 100}.{units % 100:02d}"

    prices = st.integers(min_value=1, max_value=CAP_CENTS - 1)
    quantities = st.integers(min_value=1, max_value=100_000)

    @st.composite
    def over_the_cap(draw: st.DrawFn) -> bytes:
        lines = draw(st.lists(st.tuples(prices, quantities), min_size=1, max_size=5))
        shipping = draw(st.integers(min_value=0, max_value=CAP_CENTS - 1))
        total = sum(price * quantity for price, quantity in lines) + shipping
        if total < CAP_CENTS:  # push the last line over: still one in-range quantity
            price, _ = lines[-1]
            lines[-1] = (max(price, CAP_CENTS // 100_000 + 1), 100_000)
        items = [
            {"sku": f"S{n}", "name": "Gold", "unit_price": cents(price), "quantity": quantity}
            for n, (price, quantity) in enumerate(lines)
        ]
        data = {**good["data"], "items": items, "shipping_fee": cents(shipping)}
        return encoded({**good, "data": data})

    @st.composite
    def control_character(draw: st.DrawFn) -> bytes:
        document = json.loads(json.dumps(good))
        path = draw(st.sampled_from(TEXT_FIELDS)).split(".")
        holder = document["data"]
        for part in path[:-1]:
            holder = holder[int(part)] if part.isdigit() else holder[part]
        text = str(holder.get(path[-1]) or "x")
        at = draw(st.integers(min_value=0, max_value=len(text)))
        holder[path[-1]] = text[:at] + draw(CONTROL_CHARACTERS) + text[at:]
        return encoded(document)

    return {
        "over_the_cap": bad("over_the_cap", over_the_cap()),
        "control_character": bad("control_character", control_character()),
    }


def _is_json_object(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except ValueError:
        return False


def generate(strategies: dict[str, st.SearchStrategy[Bad]], count: int) -> list[Bad]:
    """Up to `count` examples of each kind, the same ones on every run (derandomized)."""
    found: list[Bad] = []
    for strategy in strategies.values():
        found += _examples(strategy, count)
    return found


def _examples(strategy: st.SearchStrategy[Bad], count: int) -> list[Bad]:
    found: list[Bad] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(message: Bad) -> None:
        found.append(message)

    collect()
    return found

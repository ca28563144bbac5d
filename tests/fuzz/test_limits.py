"""Every input has a limit, and going past it gets the contract's 413/422 body (docs/limits.md);
a 10,000-item order or a 5 MB message on `orders.placed` is dead-lettered while the service
keeps answering and ingesting."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError
from juniper_shared.contracts.registry import encode
from juniper_testkit import bearer, kafka_options, placed_order_data, read_topic

from .stack import Stack
from .support import client, eventually, placed, produce, record_of, run

pytestmark = pytest.mark.integration

SELLER = "seller-limits"
LINE = {"line_id": "l1", "quantity": 1}
SHIPPING = {
    "carrier": "UPS",
    "tracking_number": "1Z",
    "shipped_at": "2026-01-02",
    "shipping_cost": "1.00",
}
CUSTOMER = {"name": "Maple & Co", "email": "maple@example.com"}

# (service, method, path, request options, status, code): one row per limit of docs/limits.md.
LIMITS: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    (
        "orders",
        "POST",
        "/v1/customers",
        {"content": b'{"name": "' + b"x" * 300_000 + b'"}'},
        413,
        "payload_too_large",
    ),
    (
        "invoicing",
        "POST",
        "/v1/orders/o1/invoice/preview",
        {"content": b"[" + b"1," * 140_000 + b"1]"},
        413,
        "payload_too_large",
    ),
    (
        "orders",
        "PATCH",
        "/v1/orders/o1/items",
        {"json": {"items": [{"line_id": f"l{i}", "quantity": 1} for i in range(501)]}},
        422,
        "validation_error",
    ),
    (
        "orders",
        "POST",
        "/v1/orders/o1/split",
        {"json": {"line_ids": [f"l{i}" for i in range(501)]}},
        422,
        "validation_error",
    ),
    (
        "orders",
        "POST",
        "/v1/orders/o1/items/remove",
        {"json": {"line_ids": []}},
        422,
        "validation_error",
    ),
    (
        "orders",
        "PUT",
        "/v1/seller/settings",
        {"json": {"pending_order_expiry_days": 91}},
        422,
        "validation_error",
    ),
    (
        "orders",
        "PATCH",
        "/v1/orders/o1/items",
        {"json": {"items": [{**LINE, "quantity": 0}]}},
        422,
        "validation_error",
    ),
    (
        "orders",
        "PATCH",
        "/v1/orders/o1/items",
        {"json": {"items": [{**LINE, "quantity": 100_001}]}},
        422,
        "validation_error",
    ),
    (
        "orders",
        "PATCH",
        "/v1/orders/o1/items",
        {"json": {"items": [{**LINE, "line_id": "l" * 65}]}},
        422,
        "validation_error",
    ),
    (
        "orders",
        "POST",
        "/v1/orders/o1/reject",
        {"json": {"reason": "other", "message": "m" * 2001}},
        422,
        "validation_error",
    ),
    (
        "orders",
        "POST",
        "/v1/orders/o1/cancel",
        {"json": {"message": "m" * 2001}},
        422,
        "validation_error",
    ),
    (
        "orders",
        "POST",
        "/v1/orders/o1/accept",
        {"json": {"customer": {"create": {**CUSTOMER, "name": "n" * 201}}}},
        422,
        "validation_error",
    ),
    (
        "orders",
        "POST",
        "/v1/orders/o1/accept",
        {"headers": {"If-Match": "9" * 13}},
        422,
        "validation_error",
    ),
    (
        "orders",
        "POST",
        "/v1/customers",
        {"json": {**CUSTOMER, "name": "n" * 201}},
        422,
        "validation_error",
    ),
    (
        "orders",
        "POST",
        "/v1/customers",
        {"json": {**CUSTOMER, "email": "e" * 250 + "@x.io"}},
        422,
        "validation_error",
    ),
    (
        "orders",
        "POST",
        "/v1/customers",
        {"json": {**CUSTOMER, "buyer_ids": [f"b{i}" for i in range(101)]}},
        422,
        "validation_error",
    ),
    (
        "orders",
        "POST",
        "/v1/customers",
        {"json": CUSTOMER, "headers": {"Idempotency-Key": "k" * 201}},
        422,
        "validation_error",
    ),
    ("orders", "GET", "/v1/orders", {"params": {"page_size": 101}}, 422, "validation_error"),
    ("orders", "GET", "/v1/orders", {"params": {"page_size": 0}}, 422, "validation_error"),
    ("orders", "GET", "/v1/customers", {"params": {"page_size": 501}}, 422, "validation_error"),
    ("orders", "GET", "/v1/customers", {"params": {"page": 0}}, 422, "validation_error"),
    ("orders", "GET", "/v1/orders", {"params": {"page": 100_001}}, 422, "validation_error"),
    (
        "invoicing",
        "POST",
        "/v1/orders/o1/invoice/preview",
        {"json": {"shipping": {**SHIPPING, "shipping_cost": "1000000000"}}},
        422,
        "validation_error",
    ),
    (
        "invoicing",
        "POST",
        "/v1/orders/o1/invoice/preview",
        {"json": {"shipping": {**SHIPPING, "shipping_cost": "1.0001"}}},
        422,
        "validation_error",
    ),
    (
        "invoicing",
        "POST",
        "/v1/orders/o1/invoice/preview",
        {"json": {"shipping": {**SHIPPING, "shipping_cost": "-1"}}},
        422,
        "validation_error",
    ),
    (
        "invoicing",
        "POST",
        "/v1/orders/o1/invoice/preview",
        {"json": {"shipping": {**SHIPPING, "carrier": "c" * 201}}},
        422,
        "validation_error",
    ),
    (
        "invoicing",
        "GET",
        "/v1/invoices",
        {"params": {"order_id": "o" * 65}},
        422,
        "validation_error",
    ),
    (
        "payments",
        "GET",
        "/v1/payments",
        {"params": {"invoice_id": "i" * 201}},
        422,
        "validation_error",
    ),
    (
        "notifications",
        "GET",
        "/v1/notifications",
        {"params": {"order_id": "o" * 65}},
        422,
        "validation_error",
    ),
]


NUL_IN_PATH = [
    ("orders", "GET", "/v1/orders/a%00b", {}),
    ("orders", "POST", "/v1/orders/a%00b/accept", {}),
    ("orders", "POST", "/v1/orders/a%00b/cancel", {"json": {"message": "m"}}),
    ("orders", "GET", "/v1/customers/a%00b", {}),
    ("orders", "GET", "/v1/customers/a%01b", {}),
    ("orders", "GET", "/v1/orders/" + "o" * 129, {}),
    ("orders", "GET", "/v1/orders/%C3%A9", {}),
    ("invoicing", "GET", "/v1/invoices/a%00b", {}),
    ("invoicing", "GET", "/v1/invoices/a%00b/document", {}),
    ("invoicing", "POST", "/v1/invoices/a%00b/confirm", {}),
    ("invoicing", "POST", "/v1/orders/a%00b/invoice/preview", {"json": {"shipping": SHIPPING}}),
    ("invoicing", "GET", "/v1/invoices/a%7Fb", {}),
    ("payments", "POST", "/v1/invoices/a%00b/payment/retry", {}),
]
"""Ids in a path are at most 128 printable ASCII characters: anything else is not found."""

NUL_IN_QUERY = [
    ("invoicing", "GET", "/v1/invoices", {"params": {"order_id": "a\x00b"}}),
    ("payments", "GET", "/v1/payments", {"params": {"invoice_id": "a\x00b"}}),
    ("payments", "GET", "/v1/payments", {"params": {"invoice_id": "a\x1bb"}}),
    ("notifications", "GET", "/v1/notifications", {"params": {"order_id": "a\x00b"}}),
    ("orders", "GET", "/v1/orders", {"params": {"status": "pending\x00"}}),
]

CONTROL_IN_BODY = [
    ("orders", "POST", "/v1/customers", {"json": {**CUSTOMER, "name": "Maple\x00"}}),
    ("orders", "POST", "/v1/customers", {"json": {**CUSTOMER, "name": "Maple\nBcc: x"}}),
    ("orders", "POST", "/v1/customers", {"json": {**CUSTOMER, "email": "a\x00b@example.com"}}),
    ("orders", "POST", "/v1/customers", {"json": {**CUSTOMER, "buyer_ids": ["b\x00"]}}),
    ("orders", "POST", "/v1/orders/o1/reject", {"json": {"reason": "other", "message": "\x00"}}),
    ("orders", "POST", "/v1/orders/o1/cancel", {"json": {"message": "sorry\x07"}}),
    (
        "orders",
        "POST",
        "/v1/orders/o1/cancel",
        {"content": b'{"message": "\\ud800"}', "headers": {"Content-Type": "application/json"}},
    ),
    (
        "orders",
        "POST",
        "/v1/orders/o1/accept",
        {"json": {"customer": {"create": {**CUSTOMER, "name": "\x1b[31m"}}}},
    ),
    ("orders", "POST", "/v1/orders/o1/accept", {"json": {"customer": {"associate": "c\x00"}}}),
    ("orders", "POST", "/v1/orders/o1/split", {"json": {"line_ids": ["L1\x00"]}}),
    (
        "invoicing",
        "POST",
        "/v1/orders/o1/invoice/preview",
        {"json": {"shipping": {**SHIPPING, "carrier": "UPS\x00"}}},
    ),
    (
        "invoicing",
        "POST",
        "/v1/orders/o1/invoice/preview",
        {"json": {"shipping": {**SHIPPING, "tracking_number": "1Z\x85Z"}}},
    ),
]

NOT_MONEY = [
    " 1.00",
    "1.00 ",
    "+1.00",
    "1_000",
    "1,00",
    "\u0661.\u0660\u0660",
    "\uff11.00",
    "1e3",
    "-0",
    "-1.00",
    "1.",
    ".5",
    "0x10",
    "NaN",
    "Infinity",
    "",
    1,
    1.5,
    True,
    None,
]
"""Shipping costs that are not `^[0-9]+(\\.[0-9]{1,2})?$` (USD) strings."""

NOT_STRICT = [
    *(
        (
            "invoicing",
            "POST",
            "/v1/orders/o1/invoice/preview",
            {"json": {"shipping": {**SHIPPING, "shipping_cost": cost}}},
        )
        for cost in NOT_MONEY
    ),
    *(
        (
            "invoicing",
            "POST",
            "/v1/orders/o1/invoice/preview",
            {"json": {"shipping": {**SHIPPING, "shipped_at": shipped_at}}},
        )
        for shipped_at in (0, 1767312000, True, "yesterday")
    ),
    *(
        ("orders", "PATCH", "/v1/orders/o1/items", {"json": {"items": [{**LINE, "quantity": q}]}})
        for q in (True, 1.0, "1", 1.5)
    ),
    *(
        (
            "orders",
            "PUT",
            "/v1/seller/settings",
            {"json": {"buyer_access_requires_approval": flag}},
        )
        for flag in (1, 0, "true", "false", None)
    ),
    *(
        (
            "invoicing",
            "POST",
            "/v1/orders/o1/invoice/preview",
            {"json": {"shipping": SHIPPING, "order_version": version}},
        )
        for version in ("2", True, 2.0)
    ),
]

LIMITS += [(*row, 404, "not_found") for row in NUL_IN_PATH]
LIMITS += [(*row, 422, "validation_error") for row in NUL_IN_QUERY + CONTROL_IN_BODY + NOT_STRICT]


@pytest.fixture(scope="module")
def stack(linked_stack: Stack) -> Stack:
    return linked_stack


@pytest.mark.parametrize(("service", "method", "path", "options", "status", "code"), LIMITS)
def test_past_a_limit_the_answer_is_the_contract_error(
    stack: Stack,
    service: str,
    method: str,
    path: str,
    options: dict[str, Any],
    status: int,
    code: str,
) -> None:
    headers = (
        {**bearer(SELLER), **options.pop("headers", {})} if "headers" in options else bearer(SELLER)
    )
    answer = httpx.request(
        method, stack.urls[service] + path, headers=headers, timeout=30, **options
    )
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert answer.json()["error"]["message"]


@pytest.mark.parametrize("service", ["orders", "invoicing", "payments", "notifications"])
def test_a_chunked_body_over_the_limit_gets_413(stack: Stack, service: str) -> None:
    """No Content-Length: the limit holds while the body is read."""
    paths = {
        "orders": "/v1/customers",
        "invoicing": "/v1/orders/o1/invoice/preview",
        "payments": "/v1/invoices/i1/payment/retry",
        "notifications": "/v1/notifications?order_id=o1",
    }
    method = "GET" if service == "notifications" else "POST"

    def chunks() -> Any:
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 8192
        yield b'"}'

    answer = httpx.request(
        method,
        stack.urls[service] + paths[service],
        content=chunks(),
        headers=bearer(SELLER),
        timeout=30,
    )
    assert "content-length" not in answer.request.headers
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "payload_too_large"


def test_huge_orders_are_dead_lettered_and_the_service_goes_on(stack: Stack) -> None:
    run(_huge_orders(stack))


async def _huge_orders(stack: Stack) -> None:
    topic = stack.topic("orders", "orders.placed")
    bootstrap = stack.kafka_bootstrap
    items = [
        {"sku": f"S{i}", "name": "Mug", "unit_price": "1.00", "quantity": 1} for i in range(10_000)
    ]
    many_items = placed_order_data(seller_id=SELLER, items=items)
    ten_thousand = {**_envelope(), "data": many_items}
    five_mb = {**_envelope(), "data": placed_order_data(seller_id=SELLER, notes="n" * 5_000_000)}
    raw_10k = _json(ten_thousand)
    raw_5mb = _json(five_mb)
    assert len(raw_10k) < 1_000_000 < 5_000_000 < len(raw_5mb)

    # With Kafka's defaults (1 MiB) a 5 MB message never reaches the topic: the producer refuses.
    with pytest.raises(MessageSizeTooLargeError):
        await produce(bootstrap, topic, [(b"big", raw_5mb, [])])

    # A topic configured for larger messages lets it through: the consumer must still cope.
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap, "admin"))  # alters a topic's config
    await admin.start()
    try:
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": "6000000"}
                )
            ]
        )
    finally:
        await admin.close()
    # The poison shares the good order's key, so all three are on one partition, in order.
    good = placed(SELLER)
    key = good.key().encode()
    header = [("type", b"order.placed")]
    sent = await produce(
        bootstrap,
        topic,
        [(key, raw_10k, header), (key, raw_5mb, header), record_of(good)],
        max_request_size=6_000_000,
    )

    async with client(stack, "orders", SELLER) as orders:
        await eventually(lambda: _status(orders, f"/v1/orders/{good.data.order_id}"), 200)
        assert (await orders.get("/readyz")).status_code == 200
        listed = (await orders.get("/v1/orders")).json()
        assert [row["order_id"] for row in listed["items"]] == [good.data.order_id]

    # Orders and payments (which reads placed orders for their cards) both refuse both.
    dead = await read_topic(bootstrap, f"{topic}.dlq", until=lambda records: len(records) >= 4)
    errors: dict[tuple[int, int], list[str]] = {}
    truncated = {}
    for record in dead:
        headers = {name: value.decode() for name, value in record.headers}
        source = (int(headers["dlq-source-partition"]), int(headers["dlq-source-offset"]))
        errors.setdefault(source, []).append(headers["dlq-error"])
        truncated[source] = headers.get("dlq-truncated-from")
    ten_k, five_mb = (sent[0].partition, sent[0].offset), (sent[1].partition, sent[1].offset)
    assert set(errors) == {ten_k, five_mb}
    assert len(errors[ten_k]) == len(errors[five_mb]) == 2
    assert all("items" in error for error in errors[ten_k]), errors[ten_k]
    assert all("exceeds" in error for error in errors[five_mb]), errors[five_mb]
    assert truncated[five_mb] == str(len(raw_5mb))


async def _status(http: httpx.AsyncClient, path: str) -> int:
    return (await http.get(path)).status_code


def _envelope() -> dict[str, Any]:
    import json

    return {
        key: value for key, value in json.loads(encode(placed(SELLER))).items() if key != "data"
    }


def _json(document: dict[str, Any]) -> bytes:
    import json

    return json.dumps(document).encode()

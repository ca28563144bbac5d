"""The seller's order workflow from the help article, on real Kafka, FerretDB and HTTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from juniper_testkit import placed_order, wait_until

from .conftest import OrdersUnderTest

pytestmark = pytest.mark.integration

SELLER = "seller-flow"


async def ungated(service: OrdersUnderTest, seller_id: str = SELLER) -> None:
    response = await service.http.put(
        "/v1/seller/settings",
        json={"buyer_access_requires_approval": False},
        headers=service.as_seller(seller_id),
    )
    assert response.status_code == 200


def of_type(kind: str, order_id: str) -> Any:
    return lambda events: [
        e
        for e in events
        if e["type"] == kind
        and e["data"].get("order", e["data"].get("parent", {})).get("order_id") == order_id
    ]


async def test_a_gated_seller_never_silently_drops_an_unknown_buyers_order(
    orders_service: OrdersUnderTest,
) -> None:
    order = await orders_service.place_and_wait("seller-gated")
    assert order["status"] == "rejected"
    assert order["rejection"]["reason"] == "buyer_not_approved"
    events = await orders_service.events(of_type("order.rejected", order["order_id"]))
    rejected = of_type("order.rejected", order["order_id"])(events)
    assert rejected[0]["data"]["reason"] == "buyer_not_approved"
    assert rejected[0]["data"]["order"]["buyer"]["email"] == "ada@example.com"
    assert "card_token" not in str(rejected[0])


async def test_the_same_order_placed_twice_is_one_order(orders_service: OrdersUnderTest) -> None:
    await ungated(orders_service)
    event = placed_order(seller_id=SELLER)
    await orders_service.place(event, event)
    await orders_service.wait_for_order(SELLER, event.data.order_id)
    second = placed_order(seller_id=SELLER)
    await orders_service.place(second)
    await orders_service.wait_for_order(SELLER, second.data.order_id)
    listing = (
        await orders_service.http.get("/v1/orders", headers=orders_service.as_seller(SELLER))
    ).json()
    assert listing["total_count"] == 2
    assert [row["order_id"] for row in listing["items"]] == [
        second.data.order_id,
        event.data.order_id,
    ]
    received = await orders_service.events(lambda events: len(events) >= 2)
    assert sorted(e["data"]["order"]["order_id"] for e in received) == sorted(
        [event.data.order_id, second.data.order_id]
    )


async def test_ungated_accept_links_a_new_customer_and_the_buyer_stays_linked(
    orders_service: OrdersUnderTest,
) -> None:
    await ungated(orders_service)
    seller = orders_service.as_seller(SELLER)
    order = await orders_service.place_and_wait(SELLER)
    url = f"/v1/orders/{order['order_id']}/accept"

    refused = await orders_service.http.post(url, headers=seller)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "customer_required"

    accepted = await orders_service.http.post(
        url,
        headers=seller,
        json={"customer": {"create": {"name": "Maple & Co", "email": "buying@maple.example"}}},
    )
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["status"] == "approved"
    assert accepted.headers["etag"] == f'"{body["version"]}"'
    customer = (
        await orders_service.http.get(f"/v1/customers/{body['customer_id']}", headers=seller)
    ).json()
    assert customer["buyer_ids"] == ["buyer-1"]

    next_order = await orders_service.place_and_wait(SELLER)
    again = await orders_service.http.post(
        f"/v1/orders/{next_order['order_id']}/accept", headers=seller
    )
    assert again.status_code == 200
    assert again.json()["customer_id"] == body["customer_id"]
    events = await orders_service.events(of_type("order.accepted", order["order_id"]))
    assert (
        of_type("order.accepted", order["order_id"])(events)[0]["data"]["customer_created"] is True
    )


async def test_ungated_accept_can_associate_an_existing_customer(
    orders_service: OrdersUnderTest,
) -> None:
    await ungated(orders_service)
    seller = orders_service.as_seller(SELLER)
    created = await orders_service.http.post(
        "/v1/customers",
        headers=seller,
        json={"name": "Harbour Goods", "email": "hello@harbour.example"},
    )
    assert created.status_code == 201
    customer_id = created.json()["customer_id"]
    order = await orders_service.place_and_wait(
        SELLER, buyer={"id": "buyer-77", "name": "Bo", "email": "bo@example.com"}
    )
    accepted = await orders_service.http.post(
        f"/v1/orders/{order['order_id']}/accept",
        headers=seller,
        json={"customer": {"associate": customer_id}},
    )
    assert accepted.status_code == 200
    assert accepted.json()["customer_id"] == customer_id
    customer = (
        await orders_service.http.get(f"/v1/customers/{customer_id}", headers=seller)
    ).json()
    assert customer["buyer_ids"] == ["buyer-77"]


async def test_the_customer_list_pages_by_customer_id_with_the_total(
    orders_service: OrdersUnderTest,
) -> None:
    seller_id = "seller-many-customers"
    seller = orders_service.as_seller(seller_id)
    created = []
    for number in range(5):
        response = await orders_service.http.post(
            "/v1/customers",
            headers=seller,
            json={"name": f"Shop {number}", "email": f"shop{number}@example.com"},
        )
        assert response.status_code == 201, response.text
        created.append(response.json()["customer_id"])
    # Another seller's customer is never listed, nor counted.
    other = await orders_service.http.post(
        "/v1/customers",
        headers=orders_service.as_seller("seller-elsewhere"),
        json={"name": "Elsewhere", "email": "hi@elsewhere.example"},
    )
    assert other.status_code == 201

    async def listing(**params: Any) -> dict[str, Any]:
        response = await orders_service.http.get("/v1/customers", params=params, headers=seller)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    everything = await listing()
    assert [c["customer_id"] for c in everything["items"]] == sorted(created)
    assert (everything["total_count"], everything["page"], everything["page_size"]) == (5, 1, 500)
    pages = [await listing(page=page, page_size=2) for page in (1, 2, 3, 4)]
    assert [[c["customer_id"] for c in page["items"]] for page in pages] == [
        sorted(created)[0:2],
        sorted(created)[2:4],
        sorted(created)[4:],
        [],
    ]
    assert {page["total_count"] for page in pages} == {5}
    too_big = await orders_service.http.get(
        "/v1/customers", params={"page_size": 501}, headers=seller
    )
    assert too_big.status_code == 422
    assert too_big.json()["error"]["code"] == "validation_error"


async def test_reject_with_a_reason_and_message_tells_the_buyer(
    orders_service: OrdersUnderTest,
) -> None:
    await ungated(orders_service)
    seller = orders_service.as_seller(SELLER)
    order = await orders_service.place_and_wait(SELLER)
    response = await orders_service.http.post(
        f"/v1/orders/{order['order_id']}/reject",
        headers=seller,
        json={"reason": "out_of_stock", "message": "The mugs sold out at the trade show."},
    )
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    events = await orders_service.events(of_type("order.rejected", order["order_id"]))
    data = of_type("order.rejected", order["order_id"])(events)[0]["data"]
    assert (data["reason"], data["message"]) == (
        "out_of_stock",
        "The mugs sold out at the trade show.",
    )
    again = await orders_service.http.post(f"/v1/orders/{order['order_id']}/accept", headers=seller)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_state"


async def test_split_quantities_and_removal_keep_exact_totals(
    orders_service: OrdersUnderTest,
) -> None:
    await ungated(orders_service)
    seller = orders_service.as_seller(SELLER)
    order = await orders_service.place_and_wait(
        SELLER,
        items=[
            {"sku": "MUG", "name": "Mug", "unit_price": "12.50", "quantity": 4},
            {"sku": "TEA", "name": "Tea", "unit_price": "8.00", "quantity": 2},
            {"sku": "POT", "name": "Teapot", "unit_price": "39.99", "quantity": 1},
        ],
        shipping_fee="15.00",
    )
    order_id = order["order_id"]
    assert (order["subtotal"], order["total"]) == ("105.99", "120.99")

    split = await orders_service.http.post(
        f"/v1/orders/{order_id}/split", headers=seller, json={"line_ids": ["L3"]}
    )
    assert split.status_code == 201, split.text
    child = split.json()
    assert (child["order_id"], child["status"], child["split_from"]) == (
        f"{order_id}-1",
        "pending",
        order_id,
    )
    assert child["subtotal"] == "39.99"
    parent = (await orders_service.http.get(f"/v1/orders/{order_id}", headers=seller)).json()
    assert parent["subtotal"] == "66.00"
    assert parent["split_into"] == [child["order_id"]]

    changed = await orders_service.http.patch(
        f"/v1/orders/{order_id}/items",
        headers={**seller, "If-Match": f'"{parent["version"]}"'},
        json={"items": [{"line_id": "L1", "quantity": 3}, {"line_id": "L2", "quantity": 5}]},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["subtotal"], changed.json()["total"]) == ("77.50", "92.50")

    stale = await orders_service.http.post(
        f"/v1/orders/{order_id}/items/remove",
        headers={**seller, "If-Match": f'"{parent["version"]}"'},
        json={"line_ids": ["L2"]},
    )
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "version_conflict"

    removed = await orders_service.http.post(
        f"/v1/orders/{order_id}/items/remove", headers=seller, json={"line_ids": ["L2"]}
    )
    assert removed.status_code == 200
    assert [item["line_id"] for item in removed.json()["items"]] == ["L1"]
    assert removed.json()["total"] == "52.50", removed.json()

    emptying = await orders_service.http.post(
        f"/v1/orders/{order_id}/items/remove", headers=seller, json={"line_ids": ["L1"]}
    )
    assert emptying.status_code == 422
    accepted_child = await orders_service.http.post(
        f"/v1/orders/{child['order_id']}/accept",
        headers=seller,
        json={"customer": {"create": {"name": "Maple", "email": "m@maple.example"}}},
    )
    assert accepted_child.status_code == 200
    events = await orders_service.events(of_type("order.split", order_id))
    split_event = of_type("order.split", order_id)(events)[0]["data"]
    assert split_event["new_order"]["order_id"] == child["order_id"]
    assert split_event["moved_line_ids"] == ["L3"]


async def test_a_retried_post_acts_once_and_returns_the_first_response(
    orders_service: OrdersUnderTest,
) -> None:
    await ungated(orders_service)
    seller = orders_service.as_seller(SELLER)
    order = await orders_service.place_and_wait(SELLER)
    url = f"/v1/orders/{order['order_id']}/split"
    headers = {**seller, "Idempotency-Key": "split-once"}
    first = await orders_service.http.post(url, headers=headers, json={"line_ids": ["L2"]})
    second = await orders_service.http.post(url, headers=headers, json={"line_ids": ["L2"]})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers.get("idempotent-replayed") == "true"
    parent = (
        await orders_service.http.get(f"/v1/orders/{order['order_id']}", headers=seller)
    ).json()
    assert parent["split_into"] == [first.json()["order_id"]]


async def test_cancel_only_while_approved_and_not_invoiced(orders_service: OrdersUnderTest) -> None:
    await ungated(orders_service)
    seller = orders_service.as_seller(SELLER)
    order = await orders_service.place_and_wait(SELLER)
    url = f"/v1/orders/{order['order_id']}/cancel"
    pending = await orders_service.http.post(url, headers=seller, json={"message": "too early"})
    assert pending.status_code == 409
    await orders_service.http.post(
        f"/v1/orders/{order['order_id']}/accept",
        headers=seller,
        json={"customer": {"create": {"name": "Maple", "email": "m@maple.example"}}},
    )
    cancelled = await orders_service.http.post(
        url, headers=seller, json={"message": "Buyer asked to cancel"}
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert [entry["type"] for entry in cancelled.json()["history"]] == [
        "placed",
        "accepted",
        "cancelled",
    ]


async def test_another_sellers_order_does_not_exist_for_you(
    orders_service: OrdersUnderTest,
) -> None:
    await ungated(orders_service)
    order = await orders_service.place_and_wait(SELLER)
    intruder = orders_service.as_seller("seller-intruder")
    for method, path, body in [
        ("GET", f"/v1/orders/{order['order_id']}", None),
        ("POST", f"/v1/orders/{order['order_id']}/accept", None),
        ("POST", f"/v1/orders/{order['order_id']}/reject", {"reason": "other", "message": "x"}),
        ("POST", f"/v1/orders/{order['order_id']}/split", {"line_ids": ["L1"]}),
        (
            "PATCH",
            f"/v1/orders/{order['order_id']}/items",
            {"items": [{"line_id": "L1", "quantity": 9}]},
        ),
        ("POST", f"/v1/orders/{order['order_id']}/items/remove", {"line_ids": ["L1"]}),
        ("POST", f"/v1/orders/{order['order_id']}/cancel", {"message": "x"}),
    ]:
        response = await orders_service.http.request(method, path, headers=intruder, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    listing = (await orders_service.http.get("/v1/orders", headers=intruder)).json()
    assert listing["total_count"] == 0
    unchanged = await orders_service.wait_for_order(SELLER, order["order_id"])
    assert unchanged["version"] == order["version"]
    anonymous = await orders_service.http.get(f"/v1/orders/{order['order_id']}")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"


async def test_poison_goes_to_the_dlq_and_the_partition_keeps_flowing(
    orders_service: OrdersUnderTest,
) -> None:
    from juniper_testkit import publish_raw, read_topic

    await ungated(orders_service)
    good = placed_order(seller_id=SELLER)
    await publish_raw(
        orders_service.settings.kafka_bootstrap_servers,
        orders_service.topic("orders.placed"),
        [(b"k", b"{not json"), (b"k", b'{"type": "order.placed", "data": {"order_id": 1}}')],
    )
    await orders_service.place(good)
    await orders_service.wait_for_order(SELLER, good.data.order_id)
    dead = await read_topic(
        orders_service.settings.kafka_bootstrap_servers,
        orders_service.topic("orders.placed.dlq"),
        until=lambda records: len(records) >= 2,
    )
    assert [dict(r.headers)["dlq-error"].decode().split(":")[0] for r in dead] == [
        "not JSON",
        "invalid event",
    ]
    metrics = (await orders_service.http.get("/metrics")).text
    assert 'jm_dead_letters_total{topic="orders.placed"}' in metrics
    await wait_until(lambda: _ready(orders_service), equals=200)


async def count_round_trips(service: OrdersUnderTest) -> float:
    """`count` commands sent on the orders collection so far, from the service's /metrics."""
    metrics = (await service.http.get("/metrics")).text
    found = re.search(
        r'^jm_db_commands_total\{collection="orders",command="count"\} ([0-9.e+]+)$',
        metrics,
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


async def _ready(service: OrdersUnderTest) -> int:
    return (await service.http.get("/readyz")).status_code


async def test_the_all_orders_table_pages_newest_first_with_the_total_and_a_status_filter(
    orders_service: OrdersUnderTest,
) -> None:
    """Pages come from the database's index in the table's order (placed_at, then order id,
    newest first); they must match that order exactly, ties and a status filter included."""
    seller_id = "seller-pages"
    await ungated(orders_service, seller_id)
    seller = orders_service.as_seller(seller_id)
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    events = [
        placed_order(
            seller_id=seller_id,
            # Every sixth order shares one time, and the tie spans the first page's end:
            # the order id decides among them.
            placed_at=(start + timedelta(minutes=35 if i % 6 == 0 else i)).isoformat(),
        )
        for i in range(61)
    ]
    await orders_service.place(*events)

    async def table(**params: Any) -> dict[str, Any]:
        response = await orders_service.http.get("/v1/orders", params=params, headers=seller)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def total() -> int:
        return int((await table())["total_count"])

    await wait_until(total, equals=61, timeout=30)
    newest_first = [
        event.data.order_id
        for event in sorted(events, key=lambda e: (e.data.placed_at, e.data.order_id), reverse=True)
    ]
    accepted = newest_first[3:6]
    for position, order_id in enumerate(accepted):
        body = {"customer": {"create": {"name": "Maple", "email": "buying@maple.example"}}}
        response = await orders_service.http.post(
            f"/v1/orders/{order_id}/accept", headers=seller, json=body if position == 0 else None
        )
        assert response.status_code == 200, response.text

    counts_before = await count_round_trips(orders_service)
    pages = [await table(page=page, page_size=25) for page in (1, 2, 3, 4)]
    assert [len(page["items"]) for page in pages] == [25, 25, 11, 0]
    assert {page["total_count"] for page in pages} == {61}
    assert [row["order_id"] for page in pages for row in page["items"]] == newest_first
    # Full pages and the empty one past the end count; the last page's rows give the total.
    assert await count_round_trips(orders_service) == counts_before + 3

    approved = await table(status="approved")
    assert approved["total_count"] == 3
    assert [row["order_id"] for row in approved["items"]] == accepted
    pending = await table(status="pending", page=3, page_size=25)
    assert pending["total_count"] == 58
    assert await count_round_trips(orders_service) == counts_before + 3
    assert [row["order_id"] for row in pending["items"]] == [
        order_id for order_id in newest_first if order_id not in accepted
    ][50:]


async def test_an_order_whose_prices_add_up_past_the_cap_is_dead_lettered_not_retried(
    orders_service: OrdersUnderTest,
) -> None:
    """Price 999,999,999.99 and quantity 2 are each in range; the line total is not."""
    import json

    from juniper_shared.contracts.registry import encode
    from juniper_testkit import placed_order_data, publish_raw, read_topic

    await ungated(orders_service)
    good = placed_order(seller_id=SELLER)
    envelope = json.loads(encode(good))
    items = [{"sku": "GOLD", "name": "Gold bar", "unit_price": "999999999.99", "quantity": 2}]
    poisoned = {**envelope, "data": placed_order_data(seller_id=SELLER, items=items)}
    key = good.key().encode()
    await publish_raw(
        orders_service.settings.kafka_bootstrap_servers,
        orders_service.topic("orders.placed"),
        [(key, json.dumps(poisoned).encode()), (key, encode(good))],
    )
    # The good order behind it on the same partition is stored: the batch was not stuck.
    await orders_service.wait_for_order(SELLER, good.data.order_id)
    dead = await read_topic(
        orders_service.settings.kafka_bootstrap_servers,
        orders_service.topic("orders.placed.dlq"),
        until=lambda records: len(records) >= 1,
    )
    assert len(dead) == 1
    assert "items[0].line_total" in dict(dead[0].headers)["dlq-error"].decode()
    missing = await orders_service.http.get(
        f"/v1/orders/{poisoned['data']['order_id']}", headers=orders_service.as_seller(SELLER)
    )
    assert missing.status_code == 404


async def test_a_quantity_change_that_takes_a_total_past_the_cap_is_refused(
    orders_service: OrdersUnderTest,
) -> None:
    await ungated(orders_service)
    seller = orders_service.as_seller(SELLER)
    order = await orders_service.place_and_wait(
        SELLER,
        items=[
            {"sku": "GOLD", "name": "Gold bar", "unit_price": "900000000.00", "quantity": 1},
            {"sku": "BOX", "name": "Box", "unit_price": "1000.00", "quantity": 1},
        ],
    )
    order_id = order["order_id"]
    # Each quantity is in range: 2 gold bars make a line of 1,800,000,000; 100,000 boxes a
    # line of 100,000,000 and a subtotal of exactly 1,000,000,000.
    for change, field in (
        ({"line_id": "L1", "quantity": 2}, "line L1 line_total"),
        ({"line_id": "L2", "quantity": 100_000}, "subtotal"),
    ):
        answer = await orders_service.http.patch(
            f"/v1/orders/{order_id}/items", headers=seller, json={"items": [change]}
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "validation_error"
        assert field in answer.json()["error"]["message"]
    unchanged = (await orders_service.http.get(f"/v1/orders/{order_id}", headers=seller)).json()
    assert (unchanged["version"], unchanged["total"]) == (order["version"], "900001000.00")
    assert [item["quantity"] for item in unchanged["items"]] == [1, 1]

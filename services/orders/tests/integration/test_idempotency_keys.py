"""`Idempotency-Key` on the seller's order changes, on real FerretDB and HTTP: a retried
request acts once and gets the first response; the key's mark rides in the order's own write."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from juniper_testkit import serving, wait_until
from orders.bootstrap import build_app
from pymongo import AsyncMongoClient

from .conftest import OrdersUnderTest
from .test_orders_flow import ungated

pytestmark = pytest.mark.integration

SELLER = "seller-keys"
NEW_CUSTOMER = {"customer": {"create": {"name": "Maple", "email": "m@maple.example"}}}


async def accepted(service: OrdersUnderTest) -> dict[str, Any]:
    await ungated(service, SELLER)
    order = await service.place_and_wait(SELLER)
    response = await service.http.post(
        f"/v1/orders/{order['order_id']}/accept",
        headers=service.as_seller(SELLER),
        json=NEW_CUSTOMER,
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


QUANTITY_ONE = {"items": [{"line_id": "L1", "quantity": 1}]}


def keyed_change(
    service: OrdersUnderTest, order: dict[str, Any], key: str
) -> tuple[str, dict[str, str]]:
    """The URL and headers of a quantity change of `order` carrying Idempotency-Key `key`."""
    return f"/v1/orders/{order['order_id']}/items", {
        **service.as_seller(SELLER),
        "Idempotency-Key": key,
    }


async def change_without_key(service: OrdersUnderTest, url: str) -> httpx.Response:
    """Another seller change in between, with no key."""
    return await service.http.patch(
        url,
        headers=service.as_seller(SELLER),
        json={"items": [{"line_id": "L1", "quantity": 2}]},
    )


async def test_a_retried_change_acts_once_and_answers_the_first_response(
    orders_service: OrdersUnderTest,
) -> None:
    order = await accepted(orders_service)
    url, headers = keyed_change(orders_service, order, "qty-once")
    first = await orders_service.http.patch(url, headers=headers, json=QUANTITY_ONE)
    # Another change in between: the retry still answers what the first request answered.
    other = await change_without_key(orders_service, url)
    retry = await orders_service.http.patch(url, headers=headers, json=QUANTITY_ONE)
    assert first.status_code == other.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    assert retry.headers["ETag"] == first.headers["ETag"] == f'"{order["version"] + 1}"'
    assert retry.headers.get("Idempotent-Replayed") == "true"
    now = await orders_service.http.get(
        f"/v1/orders/{order['order_id']}", headers=orders_service.as_seller(SELLER)
    )
    assert now.json()["version"] == order["version"] + 2  # the retry changed nothing


async def test_the_same_key_with_another_body_is_refused(orders_service: OrdersUnderTest) -> None:
    order = await accepted(orders_service)
    url = f"/v1/orders/{order['order_id']}/items"
    headers = {**orders_service.as_seller(SELLER), "Idempotency-Key": "qty-reused"}
    first = await orders_service.http.patch(
        url, headers=headers, json={"items": [{"line_id": "L1", "quantity": 1}]}
    )
    reused = await orders_service.http.patch(
        url, headers=headers, json={"items": [{"line_id": "L1", "quantity": 3}]}
    )
    assert first.status_code == 200
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"


async def test_two_requests_with_one_key_at_once_act_once(
    orders_service: OrdersUnderTest,
) -> None:
    order = await accepted(orders_service)
    url = f"/v1/orders/{order['order_id']}/items"
    headers = {
        **orders_service.as_seller(SELLER),
        "Idempotency-Key": "qty-twice",
        "If-Match": f'"{order["version"]}"',
    }
    body = {"items": [{"line_id": "L1", "quantity": 1}]}
    responses = await asyncio.gather(
        *(orders_service.http.patch(url, headers=headers, json=body) for _ in range(4))
    )
    assert [response.status_code for response in responses] == [200] * 4
    assert len({response.text for response in responses}) == 1
    assert sum(response.headers.get("Idempotent-Replayed") == "true" for response in responses) == 3
    now = await orders_service.http.get(
        f"/v1/orders/{order['order_id']}", headers=orders_service.as_seller(SELLER)
    )
    assert now.json()["version"] == order["version"] + 1


async def test_a_retry_whose_first_response_was_lost_gets_the_order_as_it_is(
    orders_service: OrdersUnderTest,
    mongo_client: AsyncMongoClient[dict[str, Any]],
    database_name: str,
) -> None:
    order = await accepted(orders_service)
    url = f"/v1/orders/{order['order_id']}/items/remove"
    headers = {**orders_service.as_seller(SELLER), "Idempotency-Key": "remove-once"}
    first = await orders_service.http.post(url, headers=headers, json={"line_ids": ["L2"]})
    assert first.status_code == 200
    # As if the process died after the order's write and before storing the response (it is
    # stored behind the answer: wait for it, then take it away).
    keys = mongo_client[database_name]["idempotency_keys"]
    await wait_until(lambda: keys.count_documents({}), equals=1, timeout=10)
    deleted = await keys.delete_many({})
    assert deleted.deleted_count == 1
    retry = await orders_service.http.post(url, headers=headers, json={"line_ids": ["L2"]})
    assert retry.status_code == 200
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.json() == first.json()  # nothing changed since: the same order, not removed twice


async def test_a_retry_served_by_another_replica_gets_the_first_response(
    orders_service: OrdersUnderTest,
) -> None:
    order = await accepted(orders_service)
    url, headers = keyed_change(orders_service, order, "qty-elsewhere")
    async with (
        serving(build_app(orders_service.settings)) as other_url,
        httpx.AsyncClient(base_url=other_url, timeout=30) as other_replica,
    ):
        first = await orders_service.http.patch(url, headers=headers, json=QUANTITY_ONE)
        await change_without_key(orders_service, url)
        # At once: the first replica may not have stored its response yet.
        retry = await other_replica.patch(url, headers=headers, json=QUANTITY_ONE)
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.json() == first.json()  # the first response, not the order as it is now
    assert retry.headers.get("Idempotent-Replayed") == "true"

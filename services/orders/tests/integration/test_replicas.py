"""Two replicas of the orders service changing the same orders, on real FerretDB and HTTP.

Each replica starts a change from the copy of the order it stored last (no load first). These
tests make that copy outdated on purpose: the other replica changed the order since.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from juniper_testkit import serving
from orders.bootstrap import build_app

from .conftest import OrdersUnderTest
from .test_idempotency_keys import SELLER, accepted
from .test_orders_flow import ungated

pytestmark = pytest.mark.integration


@pytest.fixture
async def other_replica(orders_service: OrdersUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serving(build_app(orders_service.settings)) as other_url,
        httpx.AsyncClient(base_url=other_url, timeout=30) as http,
    ):
        yield http


def lines(order: dict[str, Any]) -> dict[str, int]:
    return {line["line_id"]: line["quantity"] for line in order["items"]}


async def test_an_edit_on_one_replica_keeps_the_edit_made_on_the_other(
    orders_service: OrdersUnderTest, other_replica: httpx.AsyncClient
) -> None:
    order = await accepted(orders_service)  # the first replica now holds version 2
    seller = orders_service.as_seller(SELLER)
    url = f"/v1/orders/{order['order_id']}/items"

    elsewhere = await other_replica.patch(
        url, headers=seller, json={"items": [{"line_id": "L1", "quantity": 7}]}
    )
    here = await orders_service.http.post(
        f"{url}/remove", headers=seller, json={"line_ids": ["L2"]}
    )

    assert (elsewhere.status_code, here.status_code) == (200, 200)
    assert here.json()["version"] == order["version"] + 2
    assert lines(here.json()) == {"L1": 7}  # the quantity set on the other replica stays
    stored = await orders_service.http.get(f"/v1/orders/{order['order_id']}", headers=seller)
    assert stored.json() == here.json()


async def test_if_match_is_judged_against_the_stored_order_not_a_replicas_copy(
    orders_service: OrdersUnderTest, other_replica: httpx.AsyncClient
) -> None:
    order = await accepted(orders_service)
    seller = orders_service.as_seller(SELLER)
    url = f"/v1/orders/{order['order_id']}/items"
    elsewhere = await other_replica.patch(
        url, headers=seller, json={"items": [{"line_id": "L1", "quantity": 3}]}
    )
    current = elsewhere.json()["version"]

    # The version the seller saw on the other replica is current, though this replica's copy
    # is one older; the version this replica last stored is not.
    with_current = await orders_service.http.patch(
        url,
        headers={**seller, "If-Match": f'"{current}"'},
        json={"items": [{"line_id": "L1", "quantity": 4}]},
    )
    with_outdated = await orders_service.http.patch(
        url,
        headers={**seller, "If-Match": f'"{current}"'},
        json={"items": [{"line_id": "L1", "quantity": 5}]},
    )

    assert with_current.status_code == 200
    assert lines(with_current.json())["L1"] == 4
    assert with_outdated.status_code == 412
    assert with_outdated.json()["error"]["code"] == "version_conflict"
    assert f"current version is {current + 1}" in with_outdated.json()["error"]["message"]


async def test_a_refusal_from_an_outdated_copy_is_not_the_answer(
    orders_service: OrdersUnderTest, other_replica: httpx.AsyncClient
) -> None:
    """This replica last saw the order pending; the other one accepted it since. Cancelling
    is refused on a pending order but allowed on an accepted one."""
    await ungated(orders_service, SELLER)
    order = await orders_service.place_and_wait(SELLER)
    seller = orders_service.as_seller(SELLER)
    accepted_elsewhere = await other_replica.post(
        f"/v1/orders/{order['order_id']}/accept",
        headers=seller,
        json={"customer": {"create": {"name": "Maple", "email": "m@maple.example"}}},
    )
    cancelled = await orders_service.http.post(
        f"/v1/orders/{order['order_id']}/cancel", headers=seller, json={"message": "out of stock"}
    )
    assert accepted_elsewhere.status_code == 200
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"

"""Splitting never overwrites an order that already holds the new order's id (another seller's)."""

from __future__ import annotations

import uuid

import pytest

from .conftest import OrdersUnderTest

pytestmark = pytest.mark.integration


async def test_a_split_whose_new_id_is_taken_leaves_the_other_sellers_order_alone(
    orders_service: OrdersUnderTest,
) -> None:
    mine, theirs = "seller-splits", "seller-bystander"
    for seller_id in (mine, theirs):
        response = await orders_service.http.put(
            "/v1/seller/settings",
            json={"buyer_access_requires_approval": False},
            headers=orders_service.as_seller(seller_id),
        )
        assert response.status_code == 200
    order_id = f"ord-{uuid.uuid4().hex[:10]}"
    await orders_service.place_and_wait(mine, order_id=order_id)
    # Checkout happened to give another seller's order the id this split would pick.
    bystander = await orders_service.place_and_wait(theirs, order_id=f"{order_id}-1")

    split = await orders_service.http.post(
        f"/v1/orders/{order_id}/split",
        headers=orders_service.as_seller(mine),
        json={"line_ids": ["L2"]},
    )

    assert split.status_code == 409, split.text
    assert split.json()["error"]["code"] == "invalid_state"
    after = await orders_service.wait_for_order(theirs, f"{order_id}-1")
    assert (after["items"], after["version"]) == (bystander["items"], bystander["version"])
    unsplit = await orders_service.wait_for_order(mine, order_id)
    assert unsplit["split_into"] == []
    assert len(unsplit["items"]) == 2

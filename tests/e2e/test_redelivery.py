"""At-least-once across services: an event delivered twice must change nothing for the seller.

These stories run on a system of their own (one partition per topic, so every order shares
one partition): a consumer stuck on a duplicate would otherwise hold up other stories' orders.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from juniper_testkit import placed_order, wait_until

from .support import SHIPPING, Buyer, Inbox, Seller, Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(
    infra: Any, inbox: Inbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async with Stack.running(
        kafka_bootstrap=infra.kafka_bootstrap,
        mongodb_url=infra.mongodb_url,
        inbox=inbox,
        log_dir=tmp_path_factory.mktemp("e2e-redelivery-logs"),
        partitions=1,
    ) as system:
        yield system


async def test_checkout_sending_an_order_twice_holds_up_no_other_order(seller: Seller) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    resent = placed_order(
        seller_id=seller.seller_id, seller_name=seller.name, buyer=buyer.as_contract()
    )
    await seller.stack.place(resent)
    await seller.order_once(resent.data.order_id, status="pending")

    async def invoicing_knows_it() -> tuple[int, str]:
        response = await seller.post(
            "invoicing",
            f"/v1/orders/{resent.data.order_id}/invoice/preview",
            {"shipping": SHIPPING},
        )
        return response.status_code, response.json()["error"]["code"]

    # Invoicing has the pending order (it refuses to invoice it, rather than not knowing it).
    await wait_until(invoicing_knows_it, equals=(409, "order_not_invoiceable"), timeout=30)
    # Checkout did not hear back and sends the same order again: still one order...
    await seller.stack.place(resent)
    # ...and the next order from the same buyer is invoiced as usual.
    following = await seller.receives_order(buyer)
    assert (await seller.accept(following["order_id"])).status_code == 200
    draft = await seller.preview(following["order_id"])
    assert draft["status"] == "draft"
    listing = await seller.ok("orders", "GET", "/v1/orders")
    assert listing["total_count"] == 2

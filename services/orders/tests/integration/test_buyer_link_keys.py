"""A seller's buyer links on FerretDB: no seller id can spell another seller's link."""

from __future__ import annotations

from typing import Any

import pytest
from orders.adapters.customers import MongoCustomers
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("attacker_first", [True, False])
async def test_a_seller_id_holding_a_colon_cannot_capture_another_sellers_buyer(
    mongo_client: AsyncMongoClient[dict[str, Any]], database_name: str, attacker_first: bool
) -> None:
    db = mongo_client[database_name]
    links = [("a", "b:c", "cus-victim"), ("a:b", "c", "cus-attacker")]
    for seller_id, buyer_id, customer_id in reversed(links) if attacker_first else links:
        await MongoCustomers(db).link_buyer(seller_id, buyer_id, customer_id)

    fresh = MongoCustomers(db)  # another process: nothing remembered, all read from FerretDB
    assert await fresh.linked_customer("a", "b:c") == "cus-victim"
    assert await fresh.linked_customer("a:b", "c") == "cus-attacker"
    assert await fresh.linked_customer("a", "b") is None
    assert await db["buyer_links"].count_documents({}) == 2

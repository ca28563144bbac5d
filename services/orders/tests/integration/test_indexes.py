"""The seller's views' indexes, on FerretDB: created at start, replacing earlier versions'."""

from __future__ import annotations

from typing import Any

import pytest
from orders.adapters.mongo import create_indexes
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient

pytestmark = pytest.mark.integration


async def test_starting_replaces_the_indexes_an_earlier_version_created(
    mongo_client: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    db = mongo_client[database_name]
    await db["orders"].create_index([("seller_id", ASCENDING), ("placed_at", DESCENDING)])
    await db["customers"].create_index([("seller_id", ASCENDING)])

    await create_indexes(db)
    await create_indexes(db)  # every start runs it; the second changes nothing

    orders = {index["name"]: index["key"] async for index in await db["orders"].list_indexes()}
    customers = {
        index["name"]: index["key"] async for index in await db["customers"].list_indexes()
    }
    assert set(orders) == {
        "_id_",
        "seller_newest_first_btree",
        "pending_deadline_btree",
        "seller_pending_window_btree",
    }
    assert list(orders["seller_newest_first_btree"].items()) == [
        ("seller_id", 1),
        ("placed_at", -1),
        ("_id", -1),
    ]
    assert set(customers) == {"_id_", "seller_customers_btree"}

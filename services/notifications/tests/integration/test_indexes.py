"""The per-order view's indexes, on FerretDB: created at start, replacing earlier versions'."""

from __future__ import annotations

from typing import Any

import pytest
from notifications.adapters.mongo import create_indexes
from pymongo import ASCENDING, AsyncMongoClient

pytestmark = pytest.mark.integration


async def test_starting_replaces_the_index_an_earlier_version_created(
    mongo_client: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    deliveries = mongo_client[database_name]["deliveries"]
    await deliveries.create_index([("seller_id", ASCENDING), ("order_id", ASCENDING)])

    await create_indexes(mongo_client[database_name])
    await create_indexes(mongo_client[database_name])  # every start runs it

    indexes = {index["name"]: index["key"] async for index in await deliveries.list_indexes()}
    assert set(indexes) == {
        "_id_",
        "seller_order_emails_btree",
        "seller_related_order_emails_btree",
    }
    assert list(indexes["seller_order_emails_btree"]) == [
        "seller_id",
        "order_id",
        "occurred_at",
        "_id",
    ]

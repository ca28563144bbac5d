"""`juniper_ops migrate buyer-link-ids` on FerretDB: links stored under `seller:buyer` ids
keep working after the upgrade."""

from __future__ import annotations

from typing import Any

import pytest
from juniper_ops.migrations import buyer_link_ids
from orders.adapters.customers import MongoCustomers, link_id
from pymongo import AsyncMongoClient

from .test_cli import ops

pytestmark = pytest.mark.integration


async def test_links_stored_under_the_old_ids_are_rekeyed_once(
    mongo_client: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    links = mongo_client[database_name]["buyer_links"]
    await links.insert_many(
        [
            {"_id": "s1:b1", "seller_id": "s1", "buyer_id": "b1", "customer_id": "cus-1"},
            {"_id": "s1:b2", "seller_id": "s1", "buyer_id": "b2", "customer_id": "cus-old"},
            {
                "_id": link_id("s1", "b2"),
                "seller_id": "s1",
                "buyer_id": "b2",
                "customer_id": "cus-new",
            },
        ]
    )
    counted = await buyer_link_ids(mongo_client[database_name], dry_run=True)
    assert (counted.examined, counted.rewritten) == (3, 2)
    assert await links.count_documents({}) == 3  # a dry run changes nothing

    await buyer_link_ids(mongo_client[database_name])
    again = await buyer_link_ids(mongo_client[database_name])

    assert again.rewritten == 0
    customers = MongoCustomers(mongo_client[database_name])
    assert await customers.linked_customer("s1", "b1") == "cus-1"
    assert await customers.linked_customer("s1", "b2") == "cus-new"  # the newer link stays
    assert sorted([doc["_id"] async for doc in links.find({})]) == sorted(
        [link_id("s1", "b1"), link_id("s1", "b2")]
    )


async def test_the_operator_runs_it_from_the_cli(
    mongo_client: AsyncMongoClient[dict[str, Any]], database_name: str, infra: Any
) -> None:
    links = mongo_client[database_name]["buyer_links"]
    await links.insert_one({"_id": "s:b", "seller_id": "s", "buyer_id": "b", "customer_id": "c"})
    env = {"MONGODB_URL": infra.mongodb_url, "MONGODB_DATABASE": database_name}

    code, out, err = await ops("migrate", "buyer-link-ids", "--dry-run", env=env)
    assert (code, out.strip()) == (0, "buyer links: 1 examined, would re-key 1"), err
    code, out, err = await ops("migrate", "buyer-link-ids", env=env)
    assert (code, out.strip()) == (0, "buyer links: 1 examined, re-keyed 1"), err

    assert await MongoCustomers(mongo_client[database_name]).linked_customer("s", "b") == "c"

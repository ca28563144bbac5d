"""An update that a unique index refuses is a duplicate key, as on MongoDB (FerretDB carries
deploy/local/ferretdb/7-unique-updates.patch; upstream answers it as an internal error).

Invoice numbering relies on it: the write that gives a draft its number is refused, with
DuplicateKeyError, when another invoice of the seller holds that number already.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

pytestmark = pytest.mark.integration

MONGODB_URL = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017")


@pytest.fixture
async def invoices() -> AsyncIterator[AsyncCollection[dict[str, object]]]:
    """A collection of a throwaway database, with a sparse unique index on `key`."""
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(MONGODB_URL)
    database = f"test_unique_{uuid.uuid4().hex[:8]}"
    collection = client[database]["invoices"]
    try:
        await collection.create_index("key", name="key_unique", unique=True, sparse=True)
        yield collection
    finally:
        await client.drop_database(database)
        await client.close()


async def test_a_value_another_document_holds_is_refused_as_a_duplicate_key(
    invoices: AsyncCollection[dict[str, object]],
) -> None:
    # Documents without the key are not in the index: any number of them.
    await invoices.insert_many([{"_id": f"draft-{n}", "version": 1} for n in range(3)])
    await invoices.update_one({"_id": "draft-0"}, {"$set": {"key": "k1", "version": 2}})

    with pytest.raises(DuplicateKeyError):
        await invoices.update_one({"_id": "draft-1"}, {"$set": {"key": "k1", "version": 2}})

    refused = await invoices.find_one({"_id": "draft-1"})
    assert refused == {"_id": "draft-1", "version": 1}  # nothing of the write landed


async def test_of_racing_writes_of_one_value_exactly_one_lands(
    invoices: AsyncCollection[dict[str, object]],
) -> None:
    await invoices.insert_many([{"_id": f"draft-{n}"} for n in range(8)])

    async def take(n: int) -> bool:
        try:
            await invoices.update_one({"_id": f"draft-{n}"}, {"$set": {"key": "k1"}})
        except DuplicateKeyError:
            return False
        return True

    assert sum(await asyncio.gather(*(take(n) for n in range(8)))) == 1
    assert await invoices.count_documents({"key": "k1"}) == 1

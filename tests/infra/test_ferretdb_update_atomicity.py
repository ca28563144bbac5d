"""Concurrent updates of one document must not lose writes (FerretDB carries our lock patch).

Without deploy/local/ferretdb/2-update-locks.patch, FerretDB 1.24 reads,
applies and writes back each update without a lock, so concurrent updates overwrite each other
and version-guarded optimistic concurrency lets two writers both "win".
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration

MONGODB_URL = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017")


async def test_concurrent_increments_and_pulls_of_one_document_all_land() -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(MONGODB_URL)
    database = f"test_atomic_{uuid.uuid4().hex[:8]}"
    collection = client[database]["docs"]
    try:
        await collection.insert_one({"_id": "doc", "n": 0, "outbox": list(range(40))})
        await asyncio.gather(
            *(collection.update_one({"_id": "doc"}, {"$inc": {"n": 1}}) for _ in range(40)),
            *(collection.update_one({"_id": "doc"}, {"$pull": {"outbox": i}}) for i in range(40)),
        )
        document = await collection.find_one({"_id": "doc"})
        assert document is not None
        assert document["n"] == 40
        assert document["outbox"] == []
    finally:
        await client.drop_database(database)
        await client.close()


async def test_only_one_of_many_version_guarded_writers_wins() -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(MONGODB_URL)
    database = f"test_atomic_{uuid.uuid4().hex[:8]}"
    collection = client[database]["docs"]
    try:
        await collection.insert_one({"_id": "doc", "version": 1, "writer": None})
        results = await asyncio.gather(
            *(
                collection.update_one(
                    {"_id": "doc", "version": 1}, {"$set": {"version": 2, "writer": writer}}
                )
                for writer in range(30)
            )
        )
        assert sum(result.modified_count for result in results) == 1
        document = await collection.find_one({"_id": "doc"})
        assert document is not None
        assert document["version"] == 2
    finally:
        await client.drop_database(database)
        await client.close()

"""Group commit on the real database: concurrent writes share round trips, and each caller
learns its own outcome (a duplicate `_id` is reported to that caller alone)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from juniper_shared.batching import GroupInserts, GroupUpdates, InsertBehind
from juniper_shared.mongo import Document
from juniper_testkit import wait_until
from pymongo import AsyncMongoClient, monitoring

pytestmark = pytest.mark.integration


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def monitored(infra: Any) -> AsyncIterator[tuple[AsyncMongoClient[Document], Commands]]:
    """A client whose commands are recorded by name."""
    commands = Commands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        infra.mongodb_url, event_listeners=[commands]
    )
    yield client, commands
    await client.close()


async def test_concurrent_inserts_and_updates_share_round_trips(
    monitored: tuple[AsyncMongoClient[Document], Commands], database_name: str
) -> None:
    client, commands = monitored
    collection = client[database_name]["keys"]
    await collection.insert_one({"_id": "taken"})
    inserts, updates = GroupInserts(collection), GroupUpdates(collection)
    commands.names.clear()

    ids = [f"key-{n}" for n in range(30)] + ["taken"]
    inserted = await asyncio.gather(*(inserts.insert({"_id": i, "state": "running"}) for i in ids))

    assert inserted == [True] * 30 + [False]
    assert commands.names.count("insert") <= 3, commands.names  # not 31
    commands.names.clear()
    await asyncio.gather(
        *(updates.update({"_id": i}, {"$set": {"state": "done"}}) for i in ids[:30])
    )
    assert commands.names.count("update") <= 3, commands.names
    states = {d["_id"]: d.get("state") async for d in collection.find({})}
    assert states == {**{i: "done" for i in ids[:30]}, "taken": None}


async def test_inserts_behind_are_readable_at_once_and_stored_together(
    monitored: tuple[AsyncMongoClient[Document], Commands], database_name: str
) -> None:
    client, commands = monitored
    collection = client[database_name]["responses"]
    await collection.insert_one({"_id": "taken", "body": "first"})
    behind = InsertBehind(collection, delay_seconds=0.2)
    commands.names.clear()

    for n in range(30):
        behind.add({"_id": f"r-{n}", "body": n})
    behind.add({"_id": "taken", "body": "second"})
    assert behind.queued("r-7") == {"_id": "r-7", "body": 7}
    assert commands.names == []  # nothing written yet: the caller did not wait

    await wait_until(lambda: collection.count_documents({}), equals=31, timeout=10)
    assert commands.names.count("insert") == 1, commands.names
    await wait_until(lambda: _none(behind.queued("r-7")), equals=True, timeout=10)
    assert (await collection.find_one({"_id": "taken"})) == {"_id": "taken", "body": "first"}

    behind.add({"_id": "last", "body": "at shutdown"})
    await behind.flush()
    assert behind.queued("last") is None
    assert (await collection.find_one({"_id": "last"})) == {"_id": "last", "body": "at shutdown"}


async def _none(value: Any) -> bool:
    return value is None

"""Group commit on the real database. Grouped guarded updates: one command for those that
arrive together, and each caller learns whether its own guard matched, or that a unique index
refused its update. Inserts behind: readable at once, stored together, nothing left at shutdown, and an `_id`
already stored is kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from juniper_shared.batching import GroupUpdates, InsertBehind
from juniper_shared.mongo import Document
from juniper_testkit import wait_until
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import DuplicateKeyError

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


async def test_grouped_updates_tell_each_caller_whether_its_guard_matched(
    monitored: tuple[AsyncMongoClient[Document], Commands], database_name: str
) -> None:
    client, commands = monitored
    collection = client[database_name]["grouped"]
    await collection.insert_many([{"_id": f"d-{n}", "version": 1} for n in range(5)])
    updates = GroupUpdates(collection)
    commands.names.clear()

    def bump(document_id: str, *, seen: int, **fields: Any) -> Any:
        change = {"version": seen + 1, **fields}
        return updates.update_one({"_id": document_id, "version": seen}, {"$set": change})

    first = asyncio.create_task(bump("d-0", seen=1))
    await asyncio.sleep(0)  # goes alone; the rest arrive while it is in flight
    together = [
        bump("d-1", seen=1),
        bump("d-2", seen=1),
        bump("d-3", seen=5),  # a stale version: its guard misses
        bump("d-4", seen=1, by="first"),
        bump("d-4", seen=1, by="second"),  # the same version twice: only one lands
    ]
    results = await asyncio.gather(first, *together)

    assert results[:4] == [True, True, True, False]
    assert sorted(results[4:]) == [False, True]
    assert commands.names.count("update") == 2, commands.names
    stored = {d["_id"]: d async for d in collection.find({}, {"write_mark": 0})}
    assert [stored[f"d-{n}"]["version"] for n in range(5)] == [2, 2, 2, 1, 2]
    assert stored["d-4"]["by"] == ("first" if results[4] else "second")


async def test_a_grouped_update_a_unique_index_refuses_fails_its_own_caller_alone(
    monitored: tuple[AsyncMongoClient[Document], Commands], database_name: str
) -> None:
    client, _ = monitored
    collection = client[database_name]["numbered"]
    await collection.create_index("number", unique=True, sparse=True)
    await collection.insert_many(
        [{"_id": f"d-{n}", "version": 1} for n in range(5)] + [{"_id": "holder", "number": 7}]
    )
    updates = GroupUpdates(collection)

    def number(document_id: str, value: int, *, seen: int = 1) -> Any:
        change = {"version": seen + 1, "number": value}
        return updates.update_one({"_id": document_id, "version": seen}, {"$set": change})

    first = asyncio.create_task(number("d-0", 1))
    await asyncio.sleep(0)
    together = [
        number("d-1", 2),
        number("d-2", 7),  # the holder's number: refused
        number("d-3", 3, seen=4),  # a stale version: its guard misses
        number("d-4", 4),
    ]
    results = await asyncio.gather(first, *together, return_exceptions=True)

    assert results[:2] == [True, True]
    assert isinstance(results[2], DuplicateKeyError)
    assert results[3:] == [False, True]
    stored = {d["_id"]: d.get("number") async for d in collection.find({})}
    assert stored == {"d-0": 1, "d-1": 2, "d-2": None, "d-3": None, "d-4": 4, "holder": 7}


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

"""Group commit on the real database: concurrent writes share round trips, and each caller
learns its own outcome (a duplicate `_id` is reported to that caller alone)."""

from __future__ import annotations

import asyncio
from typing import Any

from juniper_shared.batching import GroupInserts, GroupUpdates
from pymongo import AsyncMongoClient, monitoring


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_concurrent_inserts_and_updates_share_round_trips(
    infra: Any, database_name: str
) -> None:
    commands = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, event_listeners=[commands]
    )
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
    await client.close()

"""The outbox poller on the real broker and database: it finds stranded events by the pending
flag (a filter FerretDB answers in PostgreSQL), republishes them, and lowers the flag once a
document's outbox is empty, never while an event is still waiting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from juniper_shared.contracts.registry import ORDERS_PLACED
from juniper_shared.outbox import (
    OUTBOX_FIELD,
    PENDING_FIELD,
    OutboxRelay,
    new_outbox,
    outbox_entry,
)
from juniper_shared.producer import EventPublisher, OutgoingMessage, Producer
from juniper_shared.settings import ServiceSettings
from juniper_testkit import kafka_credentials, placed_order, read_topic, wait_until
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.collection import AsyncCollection

pytestmark = pytest.mark.integration


def stored(document_id: str, *, age: timedelta) -> dict[str, Any]:
    event = placed_order().model_copy(update={"occurred_at": datetime.now(UTC) - age})
    document: dict[str, Any] = {"_id": document_id}
    new_outbox(document, [OutgoingMessage.of(event)])
    return document


@asynccontextmanager
async def running_relay(
    infra: Any, collection: AsyncCollection[dict[str, Any]], topic_prefix: str
) -> AsyncIterator[OutboxRelay]:
    """`relay_on`, its loop running: published at once, cleared a second later, no polling."""
    async with relay_on(
        infra, collection, topic_prefix, poll_seconds=60, clear_delay_seconds=1.0
    ) as relay:
        relay.start()
        try:
            yield relay
        finally:
            await relay.stop()


async def busy_order(
    collection: AsyncCollection[dict[str, Any]],
) -> tuple[OutgoingMessage, OutgoingMessage]:
    """`ord-busy` stored with one event in its outbox; returns it and the event of its next
    write."""
    first, second = OutgoingMessage.of(placed_order()), OutgoingMessage.of(placed_order())
    document: dict[str, Any] = {"_id": "ord-busy"}
    new_outbox(document, [first])
    await collection.insert_one(document)
    return first, second


@asynccontextmanager
async def relay_on(
    infra: Any, collection: AsyncCollection[dict[str, Any]], topic_prefix: str, **options: Any
) -> AsyncIterator[OutboxRelay]:
    """An outbox relay of `collection` publishing with a real producer under `topic_prefix`
    (orders.placed, as its writer `checkout`)."""
    await infra.provision(topic_prefix)
    settings = ServiceSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        auth_jwt_secret="x" * 8,
        **kafka_credentials("checkout"),
    )
    producer = Producer(settings, client_id="outbox-test")
    await producer.start()
    try:
        yield OutboxRelay(
            EventPublisher(producer, topic_prefix=topic_prefix), {"orders": collection}, **options
        )
    finally:
        await producer.stop()


async def test_stranded_events_are_republished_and_the_flag_lowered_only_when_empty(
    infra: Any, mongo_client: AsyncMongoClient[dict[str, Any]], database_name: str, unique: str
) -> None:
    collection = mongo_client[database_name]["orders"]
    await collection.insert_many(
        [
            stored("ord-stranded", age=timedelta(minutes=5)),  # a crash left it behind
            stored("ord-in-flight", age=timedelta(seconds=0)),  # the fast path's, for now
            {"_id": "ord-quiet", OUTBOX_FIELD: [], PENDING_FIELD: False},
        ]
    )
    prefix = f"outbox{unique}."
    async with relay_on(infra, collection, prefix, poll_seconds=5) as relay:
        assert await relay.poll_once() == 1  # the young one is left to the fast path
        records = await read_topic(
            infra.kafka_bootstrap, prefix + ORDERS_PLACED.name, until=lambda r: len(r) >= 1
        )
        assert len(records) == 1

        assert await relay.poll_once() == 0  # the stranded one is gone; its flag comes down
    flags = {
        document["_id"]: (document[PENDING_FIELD], len(document[OUTBOX_FIELD]))
        async for document in collection.find({})
    }
    assert flags == {
        "ord-stranded": (False, 0),
        "ord-in-flight": (True, 1),  # still waiting: the flag stays up
        "ord-quiet": (False, 0),
    }


async def test_the_fast_path_empties_the_outbox_and_lowers_the_flag_in_its_clearing_write(
    infra: Any, mongo_client: AsyncMongoClient[dict[str, Any]], database_name: str, unique: str
) -> None:
    collection = mongo_client[database_name]["orders"]
    published_alone = OutgoingMessage.of(placed_order())
    published_too = OutgoingMessage.of(placed_order())
    written_meanwhile = OutgoingMessage.of(placed_order())
    alone: dict[str, Any] = {"_id": "ord-alone"}
    new_outbox(alone, [published_alone])
    # Another write added an event after the relay was told about the first one.
    crowded: dict[str, Any] = {"_id": "ord-crowded"}
    new_outbox(crowded, [published_too, written_meanwhile])
    await collection.insert_many([alone, crowded])
    prefix = f"outbox{unique}."
    async with relay_on(infra, collection, prefix, poll_seconds=5) as relay:
        relay.notify("orders", "ord-alone", [published_alone])
        relay.notify("orders", "ord-crowded", [published_too])
        await relay.flush()
        records = await read_topic(
            infra.kafka_bootstrap, prefix + ORDERS_PLACED.name, until=lambda r: len(r) >= 2
        )
        assert len(records) == 2
    outboxes = {
        document["_id"]: (
            document[PENDING_FIELD],
            [entry["event_id"] for entry in document[OUTBOX_FIELD]],
        )
        async for document in collection.find({})
    }
    assert outboxes == {
        "ord-alone": (False, []),
        # Only what was published is removed; the newer event keeps the flag up.
        "ord-crowded": (True, [written_meanwhile.event_id]),
    }


async def test_the_running_relay_publishes_at_once_and_clears_each_document_once_for_its_events(
    infra: Any, mongo_client: AsyncMongoClient[dict[str, Any]], database_name: str, unique: str
) -> None:
    collection = mongo_client[database_name]["orders"]
    first, second = await busy_order(collection)
    prefix = f"outbox{unique}."
    async with running_relay(infra, collection, prefix) as relay:
        relay.notify("orders", "ord-busy", [first])
        await read_topic(
            infra.kafka_bootstrap, prefix + ORDERS_PLACED.name, until=lambda r: len(r) >= 1
        )
        # The seller's next step lands while the first event waits for its clearing write.
        await collection.update_one(
            {"_id": "ord-busy"}, {"$push": {OUTBOX_FIELD: outbox_entry(second)}}
        )
        relay.notify("orders", "ord-busy", [second])
        records = await read_topic(
            infra.kafka_bootstrap, prefix + ORDERS_PLACED.name, until=lambda r: len(r) >= 2
        )
        for _ in range(100):
            stored = await collection.find_one({"_id": "ord-busy"})
            assert stored is not None
            if not stored[OUTBOX_FIELD]:
                break
            await asyncio.sleep(0.05)
    # Two orders, two keys: the topic's partitions may hand them back in either order.
    assert sorted(json.loads(record.value)["event_id"] for record in records) == sorted(
        [first.event_id, second.event_id]
    )
    assert (stored[OUTBOX_FIELD], stored[PENDING_FIELD]) == ([], False)


class UpdateStatements(monitoring.CommandListener):
    """The update statements a client sends to one collection, as the database receives them."""

    def __init__(self, collection: str) -> None:
        self.collection = collection
        self.statements: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "update" and event.command.get("update") == self.collection:
            self.statements += event.command.get("updates", [])

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_an_outbox_that_got_another_event_since_the_publish_is_cleared_with_it_in_one_write(
    infra: Any, database_name: str, unique: str
) -> None:
    updates = UpdateStatements("orders")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, event_listeners=[updates]
    )
    collection = client[database_name]["orders"]
    first, second = await busy_order(collection)
    prefix = f"outbox{unique}."

    async def statements_sent() -> int:
        return len(updates.statements)

    async def emptied() -> bool:
        stored = await collection.find_one({"_id": "ord-busy"})
        return stored is not None and (stored[OUTBOX_FIELD], stored[PENDING_FIELD]) == ([], False)

    try:
        async with running_relay(infra, collection, prefix) as relay:
            relay.notify("orders", "ord-busy", [first])
            # The seller's next step is stored; its writer has not told the relay yet when the
            # first event's clearing write comes.
            await collection.update_one(
                {"_id": "ord-busy"}, {"$push": {OUTBOX_FIELD: outbox_entry(second)}}
            )
            await wait_until(statements_sent, equals=2)  # the push, then a clearing write
            relay.notify("orders", "ord-busy", [second])
            await wait_until(emptied, equals=True)
    finally:
        await client.drop_database(database_name)
        await client.close()
    clearing = updates.statements[1:]  # after the test's own $push
    assert [statement["q"][OUTBOX_FIELD] for statement in clearing] == [
        [outbox_entry(first)],  # missed: the outbox holds the second event too
        [outbox_entry(first), outbox_entry(second)],  # the next round: one write for both
    ]
    assert not any("$pull" in statement["u"] for statement in clearing)

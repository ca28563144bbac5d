"""The outbox poller on the real broker and database: it finds stranded events by the pending
flag (a filter FerretDB answers in PostgreSQL), republishes them, and lowers the flag once a
document's outbox is empty, never while an event is still waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from juniper_shared.contracts.registry import ORDERS_PLACED
from juniper_shared.kafka import EventPublisher, OutgoingMessage, Producer
from juniper_shared.outbox import OUTBOX_FIELD, PENDING_FIELD, OutboxRelay, new_outbox
from juniper_shared.settings import ServiceSettings
from juniper_shared.testing import placed_order, read_topic
from pymongo import AsyncMongoClient


def stored(document_id: str, *, age: timedelta) -> dict[str, Any]:
    event = placed_order().model_copy(update={"occurred_at": datetime.now(UTC) - age})
    document: dict[str, Any] = {"_id": document_id}
    new_outbox(document, [OutgoingMessage.of(event)])
    return document


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
    settings = ServiceSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap, auth_jwt_secret="x" * 8
    )
    producer = Producer(settings, client_id="outbox-test")
    await producer.start()
    prefix = f"outbox{unique}."
    try:
        relay = OutboxRelay(
            EventPublisher(producer, topic_prefix=prefix), {"orders": collection}, poll_seconds=5
        )
        assert await relay.poll_once() == 1  # the young one is left to the fast path
        records = await read_topic(
            infra.kafka_bootstrap, prefix + ORDERS_PLACED.name, until=lambda r: len(r) >= 1
        )
        assert len(records) == 1

        assert await relay.poll_once() == 0  # the stranded one is gone; its flag comes down
    finally:
        await producer.stop()
    flags = {
        document["_id"]: (document[PENDING_FIELD], len(document[OUTBOX_FIELD]))
        async for document in collection.find({})
    }
    assert flags == {
        "ord-stranded": (False, 0),
        "ord-in-flight": (True, 1),  # still waiting: the flag stays up
        "ord-quiet": (False, 0),
    }

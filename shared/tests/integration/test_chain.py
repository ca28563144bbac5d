"""Proof of the chain: a contract event on the real broker is stored in the real database,
exactly once, with poison sent to the DLQ and one offset commit per batch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from faststream.kafka import KafkaBroker
from juniper_shared.contracts.events import Envelope, OrderPlaced
from juniper_shared.contracts.registry import Topic, encode
from juniper_shared.inbox import insert_new
from juniper_shared.kafka import (
    DeadLetters,
    Subscription,
    broker_security,
    consume_batches,
    decode_batch,
    subscribe_batch,
)
from juniper_shared.metrics import FORGED_EVENTS
from juniper_shared.producer import Producer
from juniper_shared.settings import ServiceSettings
from juniper_testkit import (
    kafka_credentials,
    kafka_settings,
    placed_order,
    placed_order_data,
    wait_until,
)
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration


class ConsumerCalls:
    """Counts calls of one of aiokafka's consumer methods (`commit`, `getmany`) by wrapping it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
        self.count = 0
        original = getattr(AIOKafkaConsumer, method)

        async def counting(consumer: AIOKafkaConsumer, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(consumer, *args, **kwargs)

        monkeypatch.setattr(AIOKafkaConsumer, method, counting)


@pytest.fixture
def topic(unique: str) -> Topic:
    return Topic(
        name=f"test.placed.{unique}", key="order id", writer="checkout", events=(OrderPlaced,)
    )


class StoringConsumer:
    def __init__(self, broker: KafkaBroker, producer: Producer) -> None:
        self._broker = broker
        self._producer = producer

    async def stop(self) -> None:
        await self._broker.stop()
        await self._producer.stop()


async def run_storing_consumer(
    infra: Any, topic: Topic, mongo_client: AsyncMongoClient[dict[str, Any]], database_name: str
) -> tuple[StoringConsumer, list[int]]:
    settings = ServiceSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        auth_jwt_secret="dev-only-secret",
        **kafka_credentials("admin"),
    )
    broker = KafkaBroker(
        infra.kafka_bootstrap,
        security=broker_security(kafka_settings(infra.kafka_bootstrap, "admin")),
        logger=None,
    )
    producer = Producer(settings, client_id="test")
    await producer.start()
    dead_letters = DeadLetters(producer)
    collection = mongo_client[database_name]["orders"]
    batch_sizes: list[int] = []

    @subscribe_batch(broker, topic, group_id=f"group-{topic.name}", settings=settings)
    async def on_placed(records: tuple[ConsumerRecord[Any, Any], ...]) -> None:
        batch_sizes.append(len(records))
        events = [delivery.event for delivery in await decode_batch(topic, records, dead_letters)]
        await insert_new(
            collection,
            [
                {"_id": event.data.order_id, "total_items": len(event.data.items)}
                for event in events
            ],
        )

    await broker.start()
    return StoringConsumer(broker, producer), batch_sizes


async def produce(infra: Any, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(**infra.kafka(), enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, value, key=b"k")
        await producer.flush()
    finally:
        await producer.stop()


async def dlq_messages(infra: Any, topic: Topic, expected: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic.dlq, **infra.kafka(), auto_offset_reset="earliest")
    await consumer.start()
    try:
        found: list[Any] = []
        async with asyncio.timeout(20):
            while len(found) < expected:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    found.extend(records)
        return found
    finally:
        await consumer.stop()


async def test_the_same_order_delivered_twice_is_stored_once(
    infra: Any, topic: Topic, mongo_client: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    event = placed_order()
    broker, _ = await run_storing_consumer(infra, topic, mongo_client, database_name)
    try:
        await produce(infra, topic.name, [encode(event), encode(event)])
        collection = mongo_client[database_name]["orders"]
        await wait_until(lambda: collection.count_documents({}), equals=1)
        await asyncio.sleep(0.5)  # give a wrongly duplicated insert the chance to show up
        assert await collection.count_documents({}) == 1
        stored = await collection.find_one({"_id": event.data.order_id})
        assert stored == {"_id": event.data.order_id, "total_items": 2}
    finally:
        await broker.stop()


async def test_an_idle_consumer_waits_in_its_poll_and_takes_a_new_order_at_once(
    infra: Any,
    topic: Topic,
    mongo_client: AsyncMongoClient[dict[str, Any]],
    database_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An idle consumer asks aiokafka for records about 2.5 times a second: FastStream's batch
    poll waits up to `BATCH_TIMEOUT_MS` (returning as soon as records are there) and sleeps as
    long again after an empty poll."""
    polls = ConsumerCalls(monkeypatch, "getmany")
    broker, _ = await run_storing_consumer(infra, topic, mongo_client, database_name)
    try:
        collection = mongo_client[database_name]["orders"]
        await produce(infra, topic.name, [encode(placed_order())])
        await wait_until(lambda: collection.count_documents({}), equals=1)
        polls_before_idle = polls.count
        await asyncio.sleep(3)
        idle_polls = polls.count - polls_before_idle
        assert 1 <= idle_polls <= 10, f"{idle_polls} polls in 3 idle seconds"

        await produce(infra, topic.name, [encode(placed_order())])
        await wait_until(lambda: collection.count_documents({}), equals=2)
    finally:
        await broker.stop()


async def test_poison_goes_to_the_dlq_and_the_next_good_order_is_still_stored(
    infra: Any, topic: Topic, mongo_client: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    good = placed_order()
    invalid = json.dumps(
        {
            "type": "order.placed",
            "seller_id": "s",
            "producer": "checkout",
            "data": placed_order_data(currency="XXX"),
        }
    ).encode()
    broker, _ = await run_storing_consumer(infra, topic, mongo_client, database_name)
    try:
        await produce(infra, topic.name, [b"\xff not json", invalid, encode(good)])
        collection = mongo_client[database_name]["orders"]
        await wait_until(lambda: collection.count_documents({}), equals=1)
        assert await collection.find_one({"_id": good.data.order_id}) is not None
        dead = await dlq_messages(infra, topic, expected=2)
        errors = [dict(record.headers)["dlq-error"].decode() for record in dead]
        assert errors[0].startswith("not JSON")
        assert "currency" in errors[1]
        assert dead[0].value == b"\xff not json"
    finally:
        await broker.stop()


async def test_a_thousand_orders_are_stored_with_one_commit_per_batch(
    infra: Any,
    topic: Topic,
    mongo_client: AsyncMongoClient[dict[str, Any]],
    database_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    commits = ConsumerCalls(monkeypatch, "commit")
    events = [placed_order() for _ in range(1000)]
    await produce(infra, topic.name, [encode(event) for event in events])
    broker, batch_sizes = await run_storing_consumer(infra, topic, mongo_client, database_name)
    try:
        collection = mongo_client[database_name]["orders"]
        await wait_until(lambda: collection.count_documents({}), equals=1000, timeout=60)
        await wait_until(lambda: _async(sum(batch_sizes)), equals=1000)
    finally:
        await broker.stop()
    assert len(batch_sizes) < 100, f"expected batches, got {len(batch_sizes)} handler calls"
    assert commits.count == len(batch_sizes)


async def _async(value: int) -> int:
    return value


async def consumer_of_two_topics(
    infra: Any,
    unique: str,
    handlers: Callable[[Topic], Callable[[list[Envelope]], Awaitable[None]]],
) -> tuple[KafkaBroker, Producer, Topic, Topic]:
    """One consumer (not started) for two new topics, `handlers(topic)` handling each."""
    first, second = (
        Topic(
            name=f"test.{which}.{unique}", key="order id", writer="checkout", events=(OrderPlaced,)
        )
        for which in ("first", "second")
    )
    settings = ServiceSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        auth_jwt_secret="dev-only-secret",
        **kafka_credentials("admin"),
    )
    producer = Producer(settings, client_id="test")
    await producer.start()
    broker = KafkaBroker(
        infra.kafka_bootstrap,
        security=broker_security(kafka_settings(infra.kafka_bootstrap, "admin")),
        logger=None,
    )
    consume_batches(
        broker,
        [Subscription(first, handlers(first)), Subscription(second, handlers(second))],
        group_id=f"group-{unique}",
        settings=settings,
        dead_letters=DeadLetters(producer),
    )
    return broker, producer, first, second


async def test_one_consumer_hands_each_topic_its_own_events(infra: Any, unique: str) -> None:
    received: dict[str, list[str]] = {}

    def recorder(topic: Topic) -> Callable[[list[Envelope]], Awaitable[None]]:
        received[topic.name] = []

        async def record(events: list[Envelope]) -> None:
            received[topic.name].extend(str(event.event_id) for event in events)

        return record

    broker, producer, first, second = await consumer_of_two_topics(infra, unique, recorder)
    to_first = [placed_order() for _ in range(3)]
    to_second = [placed_order() for _ in range(2)]
    await produce(infra, first.name, [encode(event) for event in to_first])
    await produce(infra, second.name, [encode(event) for event in to_second] + [b"not json"])

    async def counts() -> tuple[int, int]:
        return len(received[first.name]), len(received[second.name])

    await broker.start()
    try:
        await wait_until(counts, equals=(3, 2))
        assert sorted(received[first.name]) == sorted(str(e.event_id) for e in to_first)
        assert sorted(received[second.name]) == sorted(str(e.event_id) for e in to_second)
        assert [record.value for record in await dlq_messages(infra, second, 1)] == [b"not json"]
        assert len(broker.subscribers) == 1  # one consumer for both topics
    finally:
        await broker.stop()
        await producer.stop()


async def test_topics_that_share_a_handler_reach_it_in_one_call_per_batch(
    infra: Any, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = ConsumerCalls(monkeypatch, "commit")
    calls: list[list[str]] = []

    async def on_events(events: list[Envelope]) -> None:
        calls.append([str(event.event_id) for event in events])

    broker, producer, first, second = await consumer_of_two_topics(
        infra, unique, lambda _topic: on_events
    )
    to_first = [placed_order() for _ in range(3)]
    to_second = [placed_order() for _ in range(2)]
    # Both topics hold their events before the consumer starts: its first batch has both.
    await produce(infra, first.name, [encode(event) for event in to_first])
    await produce(infra, second.name, [encode(event) for event in to_second])

    async def delivered() -> int:
        return sum(len(call) for call in calls)

    await broker.start()
    try:
        await wait_until(delivered, equals=5)
    finally:
        await broker.stop()
        await producer.stop()
    firsts = {str(event.event_id) for event in to_first}
    seconds = {str(event.event_id) for event in to_second}
    assert sorted(id_ for call in calls for id_ in call) == sorted(firsts | seconds)
    assert any(firsts & set(call) and seconds & set(call) for call in calls), calls
    assert len(calls) == commits.count  # one call per batch, not one per topic


# --- failures: nothing one record causes holds back the records behind it --------------------


async def dlq_count(infra: Any, topic: Topic, *, settle_seconds: float = 3.0) -> int:
    """How many dead letters `topic` has, read until none came for `settle_seconds`."""
    consumer = AIOKafkaConsumer(topic.dlq, **infra.kafka(), auto_offset_reset="earliest")
    await consumer.start()
    try:
        found = 0
        while batch := await consumer.getmany(timeout_ms=int(settle_seconds * 1000)):
            found += sum(len(records) for records in batch.values())
        return found
    finally:
        await consumer.stop()


def failing_on(
    bad_ids: set[str], error: Callable[[], Exception], applied: list[str], attempts: list[str]
) -> Callable[[Topic], Callable[[list[Envelope]], Awaitable[None]]]:
    """A handler that raises `error()` for any batch holding one of `bad_ids`, else records."""

    def handler(_topic: Topic) -> Callable[[list[Envelope]], Awaitable[None]]:
        async def handle(events: list[Envelope]) -> None:
            ids = [str(event.event_id) for event in events]
            attempts.extend(id_ for id_ in ids if id_ in bad_ids)
            if bad_ids & set(ids):
                raise error()
            applied.extend(ids)

        return handle

    return handler


async def test_a_record_its_handler_refuses_is_dead_lettered_and_the_rest_are_applied(
    infra: Any, unique: str
) -> None:
    applied: list[str] = []
    attempts: list[str] = []
    good, bad, behind = placed_order(), placed_order(), placed_order()
    broker, producer, first, _ = await consumer_of_two_topics(
        infra,
        unique,
        failing_on(
            {str(bad.event_id)}, lambda: ValueError("total over the cap"), applied, attempts
        ),
    )
    await produce(infra, first.name, [encode(good), encode(bad)])
    await broker.start()
    try:
        await wait_until(lambda: _async(len(applied)), equals=1)
        await produce(infra, first.name, [encode(behind)])
        await wait_until(lambda: _async(str(behind.event_id) in applied), equals=True)
        [letter] = await dlq_messages(infra, first, 1)
    finally:
        await broker.stop()
        await producer.stop()
    assert set(applied) == {str(good.event_id), str(behind.event_id)}
    assert json.loads(letter.value)["event_id"] == str(bad.event_id)
    headers = dict(letter.headers)
    assert headers["dlq-error"] == b"ValueError: total over the cap"
    assert headers["dlq-source-topic"] == first.name.encode()


async def test_a_record_failing_the_same_transient_looking_way_three_times_is_poison(
    infra: Any, unique: str
) -> None:
    """A message that makes the database drop the connection looks transient every time."""
    applied: list[str] = []
    attempts: list[str] = []
    bad, behind = placed_order(), placed_order()
    broker, producer, first, _ = await consumer_of_two_topics(
        infra,
        unique,
        failing_on(
            {str(bad.event_id)}, lambda: ConnectionError("connection closed"), applied, attempts
        ),
    )
    await produce(infra, first.name, [encode(bad), encode(behind)])
    await broker.start()
    try:
        await wait_until(lambda: _async(applied), equals=[str(behind.event_id)], timeout=60)
        [letter] = await dlq_messages(infra, first, 1)
    finally:
        await broker.stop()
        await producer.stop()
    assert json.loads(letter.value)["event_id"] == str(bad.event_id)
    assert len(attempts) >= 3
    assert dict(letter.headers)["dlq-error"] == b"ConnectionError: connection closed"


async def test_a_dependency_down_dead_letters_nothing_and_the_batch_comes_again(
    infra: Any, unique: str
) -> None:
    applied: list[str] = []
    calls = 0

    def handler(_topic: Topic) -> Callable[[list[Envelope]], Awaitable[None]]:
        async def handle(events: list[Envelope]) -> None:
            nonlocal calls
            calls += 1
            if calls <= 8:  # the database is down for the first eight calls, whatever they hold
                raise ConnectionError("database unreachable")
            applied.extend(str(event.event_id) for event in events)

        return handle

    orders = [placed_order() for _ in range(3)]
    broker, producer, first, _ = await consumer_of_two_topics(infra, unique, handler)
    await produce(infra, first.name, [encode(order) for order in orders])
    await broker.start()
    try:
        await wait_until(lambda: _async(len(set(applied))), equals=3, timeout=90)
    finally:
        await broker.stop()
        await producer.stop()
    assert set(applied) == {str(order.event_id) for order in orders}
    assert await dlq_count(infra, first) == 0


async def test_an_event_from_another_producer_than_its_topics_writer_is_refused(
    infra: Any, unique: str
) -> None:
    applied: list[str] = []
    genuine = placed_order()
    forged = placed_order().model_copy(update={"producer": "payments"})
    broker, producer, first, _ = await consumer_of_two_topics(
        infra, unique, failing_on(set(), lambda: ValueError(), applied, [])
    )
    before = FORGED_EVENTS.labels(first.name)._value.get()
    await produce(infra, first.name, [encode(forged), encode(genuine)])
    await broker.start()
    try:
        await wait_until(lambda: _async(applied), equals=[str(genuine.event_id)])
        [letter] = await dlq_messages(infra, first, 1)
    finally:
        await broker.stop()
        await producer.stop()
    assert json.loads(letter.value)["event_id"] == str(forged.event_id)
    assert b"producer 'payments'" in dict(letter.headers)["dlq-error"]
    assert FORGED_EVENTS.labels(first.name)._value.get() == before + 1


async def test_a_dead_letter_fits_its_topic_whatever_headers_the_original_carried(
    infra: Any, unique: str
) -> None:
    applied: list[str] = []
    behind = placed_order()
    broker, producer, first, _ = await consumer_of_two_topics(
        infra, unique, failing_on(set(), lambda: ValueError(), applied, [])
    )
    raw = AIOKafkaProducer(**infra.kafka())
    await raw.start()
    try:
        # 900 kB of headers: with the DLQ's own headers added, a full copy would pass 1 MiB.
        headers = [(f"h{index}", b"x" * 90_000) for index in range(10)]
        await raw.send_and_wait(first.name, b"not json", key=b"k", headers=headers)
        await raw.send_and_wait(first.name, encode(behind), key=b"k")
    finally:
        await raw.stop()
    await broker.start()
    try:
        await wait_until(lambda: _async(applied), equals=[str(behind.event_id)])
        [letter] = await dlq_messages(infra, first, 1)
    finally:
        await broker.stop()
        await producer.stop()
    assert letter.value == b"not json"
    assert int(dict(letter.headers)["dlq-headers-dropped"]) > 0

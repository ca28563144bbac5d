"""A service's producer against a broker that goes away: a send Kafka cannot acknowledge fails at
its delivery deadline as transient, instead of waiting for ever, and publishing resumes once the
broker is back. Nothing sent before, and nothing sent after, is lost.

Runs with `make test-faults` (its own broker, which it stops), not with `make test`; as the
broker's super user, which may create the test's own topic.
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from juniper_shared.batch_run import is_transient
from juniper_shared.producer import Producer
from juniper_shared.settings import ServiceSettings
from juniper_testkit import kafka_credentials, kafka_options

from ..support.stack import PrivateKafka

DEADLINE_SECONDS = 3.0


async def values_on(bootstrap: str, topic: str, *, at_least: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        **kafka_options(bootstrap, "admin"),
        group_id=f"deadline-check-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        for _ in range(30):  # bounded: at most 30 polls of a second
            batches = await consumer.getmany(timeout_ms=1000)
            values += [record.value for part in batches.values() for record in part]
            if len(values) >= at_least:
                break
    finally:
        await consumer.stop()
    return values


async def test_a_send_the_broker_cannot_take_fails_at_its_deadline_and_publishing_resumes(
    kafka: PrivateKafka,
) -> None:
    settings = ServiceSettings(
        kafka_bootstrap_servers=kafka.bootstrap, **kafka_credentials("admin")
    )
    producer = Producer(
        settings, client_id="deadline-suite", delivery_deadline_seconds=DEADLINE_SECONDS
    )
    topic = f"faults.deadline.{uuid.uuid4().hex[:8]}"
    await producer.start()
    try:
        await producer.send_all([(topic, b"order-1", b"before", [])])

        await kafka.down()
        try:
            with pytest.raises(TimeoutError) as missed:
                await producer.send_all([(topic, b"order-1", b"while down", [])])
            assert is_transient(missed.value)  # a consumer's batch comes again, not a DLQ
        finally:
            await kafka.up()

        await producer.send_all([(topic, b"order-1", b"after", [])])
    finally:
        await producer.stop()

    # At least once: the send that missed its deadline may still have gone out.
    values = await values_on(kafka.bootstrap, topic, at_least=2)
    assert values[0] == b"before"
    assert b"after" in values
    assert set(values) <= {b"before", b"while down", b"after"}

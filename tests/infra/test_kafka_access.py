"""The broker admits each principal to its own topics only (the contract's "Kafka access").

On a run's own prefix, provisioned like the local stack's bare topic names: every principal
writes what the table says it writes and nothing else, reads what it reads (with its consumer
group) and nothing else; a wrong password cannot connect.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from juniper_ops.kafka_access import OPS, TABLE, Access, topic_names
from juniper_shared.contracts.registry import TOPICS

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT") == "PLAINTEXT",
        reason="needs the SASL broker of make test / make infra-up",
    ),
]

PER_CALL_SECONDS = 15


@pytest.fixture
async def prefix(infra: Any, unique: str) -> str:
    prefix = f"t{unique}."
    await infra.provision(prefix, partitions=1)
    return prefix


async def write(infra: Any, principal: str, topic: str) -> None:
    producer = AIOKafkaProducer(
        **infra.kafka(principal), enable_idempotence=True, request_timeout_ms=10_000
    )
    await producer.start()
    try:
        async with asyncio.timeout(PER_CALL_SECONDS):
            await producer.send_and_wait(topic, b"{}", key=b"k")
    finally:
        await producer.stop()


async def read(infra: Any, principal: str, topic: str, *, group: str | None) -> int:
    """Subscribes to the topic from its start, as a service does; with `group`, commits there."""
    consumer = AIOKafkaConsumer(
        topic,
        **infra.kafka(principal),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
    )
    try:
        async with asyncio.timeout(PER_CALL_SECONDS):
            await consumer.start()
            records: list[Any] = []
            while not records:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
            if group is not None:
                await consumer.commit()
            return len(records)
    finally:
        await consumer.stop()


def others(row: Access, names: list[str]) -> list[str]:
    """Topics of the contract the row neither writes nor reads."""
    own = {topic.name for topic in row.writes + row.reads} | {t.dlq for t in row.reads}
    return [name for name in names if name not in own]


@pytest.mark.parametrize("row", TABLE, ids=lambda row: row.principal)
async def test_each_service_writes_and_reads_its_own_topics_only(
    infra: Any, prefix: str, row: Access
) -> None:
    for name in row.written_names():
        await write(infra, row.principal, prefix + name)
    for name in others(row, [topic.name for topic in TOPICS]):
        with pytest.raises(TopicAuthorizationFailedError):
            await write(infra, row.principal, prefix + name)

    group = prefix + (row.group or "")
    for topic in row.reads:
        await write(infra, OPS, prefix + topic.name)
        assert await read(infra, row.principal, prefix + topic.name, group=group) >= 1
    for name in others(row, [topic.name for topic in TOPICS]):
        with pytest.raises(TopicAuthorizationFailedError):
            await read(infra, row.principal, prefix + name, group=row.group and group)


async def test_ops_reads_and_writes_every_topic(infra: Any, prefix: str) -> None:
    for name in topic_names(prefix):
        await write(infra, OPS, name)
        assert await read(infra, OPS, name, group=None) == 1


async def test_a_service_cannot_commit_under_another_services_group(
    infra: Any, prefix: str
) -> None:
    await write(infra, "checkout", prefix + "orders.placed")
    with pytest.raises(KafkaError):
        await read(infra, "payments", prefix + "orders.placed", group=prefix + "orders")


async def test_a_wrong_password_cannot_connect(infra: Any) -> None:
    options = infra.kafka("checkout") | {"sasl_plain_password": "not-the-password"}
    producer = AIOKafkaProducer(**options, request_timeout_ms=5_000)
    with pytest.raises(KafkaError):
        async with asyncio.timeout(PER_CALL_SECONDS):
            await producer.start()
    await producer.stop()

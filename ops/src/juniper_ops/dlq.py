"""Dead-letter topics: read what landed there and republish it to the topic it came from.

Replay progress is kept as the committed offsets of one consumer group per dead-letter topic,
so a replay never republishes what an earlier replay already sent (dry runs commit nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from juniper_shared.contracts.registry import TOPICS
from juniper_shared.settings import KafkaSettings

REPLAY_GROUP = "juniper-ops.dlq-replay"
"""Consumer group whose committed offsets mark how far each dead-letter topic was replayed."""

READ_SECONDS = 60.0
"""Upper bound for reading a dead-letter topic up to its end."""

DLQ_HEADER_PREFIX = "dlq-"
REPLAYED_FROM_HEADER = "dlq-replayed-from"

Headers = tuple[tuple[str, bytes], ...]


class UnknownTopic(ValueError):
    """The name is neither a registry topic nor its dead-letter topic."""


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    replayed: bool

    def header(self, name: str) -> str:
        for header, value in self.headers:
            if header == name:
                return value.decode("utf-8", errors="replace")
        return ""

    @property
    def error(self) -> str:
        return self.header("dlq-error")

    @property
    def source(self) -> str:
        topic = self.header("dlq-source-topic")
        if not topic:
            return "?"
        return f"{topic}/{self.header('dlq-source-partition')}@{self.header('dlq-source-offset')}"


@dataclass(frozen=True)
class DeadLetterTopic:
    """A registry topic's dead-letter topic, with the prefix this deployment uses."""

    source: str
    prefix: str = ""

    @classmethod
    def named(cls, name: str, *, prefix: str = "") -> DeadLetterTopic:
        """Accepts `orders.placed` or `orders.placed.dlq` (without the prefix)."""
        base = name.removesuffix(".dlq")
        known = {topic.name for topic in TOPICS}
        if base not in known:
            raise UnknownTopic(f"unknown topic {name!r}; known: {', '.join(sorted(known))}")
        return cls(source=base, prefix=prefix)

    @property
    def name(self) -> str:
        return f"{self.prefix}{self.source}.dlq"

    @property
    def source_name(self) -> str:
        return self.prefix + self.source


async def read_dead_letters(
    kafka: KafkaSettings, topic: DeadLetterTopic, *, limit: int, unreplayed_only: bool = False
) -> list[DeadLetter]:
    """The first `limit` dead letters (partition by partition, oldest first), all of them or
    only those no replay has sent yet."""
    consumer = _consumer(kafka)
    await consumer.start()
    try:
        async with asyncio.timeout(READ_SECONDS):
            return await _read(
                consumer, kafka, topic.name, limit=limit, unreplayed_only=unreplayed_only
            )
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Replay:
    target: str
    letters: tuple[DeadLetter, ...]
    dry_run: bool


async def replay_dead_letters(
    kafka: KafkaSettings, topic: DeadLetterTopic, *, limit: int, dry_run: bool = False
) -> Replay:
    """Republish dead letters no replay has sent yet to their original topic, in order and with
    their key (so per-entity order holds), then record the progress."""
    consumer = _consumer(kafka)
    await consumer.start()
    try:
        async with asyncio.timeout(READ_SECONDS):
            letters = await _read(consumer, kafka, topic.name, limit=limit, unreplayed_only=True)
        if dry_run or not letters:
            return Replay(topic.source_name, tuple(letters), dry_run)
        producer = AIOKafkaProducer(
            **kafka.kafka_client_options(), enable_idempotence=True, acks="all"
        )
        await producer.start()
        try:
            futures = [
                await producer.send(
                    topic.source_name,
                    letter.value,
                    key=letter.key,
                    headers=_replay_headers(topic.name, letter),
                )
                for letter in letters
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        progress: dict[TopicPartition, int] = {}
        for letter in letters:
            tp = TopicPartition(topic.name, letter.partition)
            progress[tp] = max(progress.get(tp, 0), letter.offset + 1)
        await consumer.commit(progress)
        return Replay(topic.source_name, tuple(letters), dry_run)
    finally:
        await consumer.stop()


def _replay_headers(dlq: str, letter: DeadLetter) -> list[tuple[str, bytes]]:
    kept = [
        (name, value) for name, value in letter.headers if not name.startswith(DLQ_HEADER_PREFIX)
    ]
    kept.append((REPLAYED_FROM_HEADER, f"{dlq}/{letter.partition}@{letter.offset}".encode()))
    return kept


def _consumer(kafka: KafkaSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **kafka.kafka_client_options(),
        group_id=REPLAY_GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=15_000,
    )


async def _read(
    consumer: AIOKafkaConsumer,
    kafka: KafkaSettings,
    topic: str,
    *,
    limit: int,
    unreplayed_only: bool,
) -> list[DeadLetter]:
    partitions = await _partitions(kafka, topic)
    if not partitions:
        return []
    consumer.assign(partitions)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    letters: list[DeadLetter] = []
    for tp in partitions:
        committed = await consumer.committed(tp) or 0
        start = committed if unreplayed_only else 0
        # Older messages may have been removed by retention: start at the first one kept.
        start = max(start, (await consumer.beginning_offsets([tp]))[tp])
        if start >= ends[tp] or len(letters) >= limit:
            continue
        consumer.seek(tp, start)
        while await consumer.position(tp) < ends[tp] and len(letters) < limit:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=limit - len(letters))
            for record in batch.get(tp, ()):
                if record.offset >= ends[tp]:
                    break
                letters.append(
                    DeadLetter(
                        partition=record.partition,
                        offset=record.offset,
                        key=record.key,
                        value=record.value,
                        headers=tuple(record.headers or ()),
                        replayed=record.offset < committed,
                    )
                )
    return letters[:limit]


async def _partitions(kafka: KafkaSettings, topic: str) -> Sequence[TopicPartition]:
    """The topic's partitions; none when it does not exist (it is not created by asking)."""
    admin = AIOKafkaAdminClient(**kafka.kafka_client_options(), request_timeout_ms=15_000)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return []
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    numbers = sorted(partition["partition"] for partition in described[0]["partitions"])
    return [TopicPartition(topic, number) for number in numbers]

"""FastStream's publisher against aiokafka's producer, for what the outbox sends: `make bench-publish`.

Why the services publish through aiokafka directly (docs/architecture.md, "Where FastStream is
not used"): this sends the same records both ways, interleaved, on the local broker, and
prints this process's CPU per 1,000 records. Each way is idempotent with `acks=all` and 5 ms
of linger, as the services' producer is; the records (1 KB, keyed, with a `type` header) go
out 50 at a time and the next 50 only once Kafka acknowledged those, as the outbox relay sends
a batch. FastStream publishes each record with `broker.publish`, gathered; aiokafka sends each
with `send` and awaits the delivery futures together.

    uv run python bench/publish_bench.py   (needs `make infra-up`)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from juniper_shared.kafka import broker_security
from juniper_testkit import kafka_options, kafka_settings

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PRINCIPAL = "admin"  # the super user: the topic is the bench's own, created by producing to it
RECORDS = int(os.environ.get("BENCH_PUBLISH_RECORDS", "5000"))
BATCH = 50
ROUNDS = int(os.environ.get("BENCH_PUBLISH_ROUNDS", "3"))
BODY = b"x" * 1024

Sender = Callable[[list[tuple[bytes, list[tuple[str, bytes]]]]], Awaitable[None]]


async def timed(send: Sender, topic: str) -> float:
    """CPU ms of this process per 1,000 records sent with `send`."""
    started = time.process_time()
    for first in range(0, RECORDS, BATCH):
        batch = [
            (f"key-{n}".encode(), [("type", b"order.updated"), ("event_id", uuid.uuid4().bytes)])
            for n in range(first, min(first + BATCH, RECORDS))
        ]
        await send(batch)
    return 1000 * (time.process_time() - started) / RECORDS * 1000


async def main() -> None:
    topic = f"bench.publish.{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(
        **kafka_options(BOOTSTRAP, PRINCIPAL), enable_idempotence=True, acks="all", linger_ms=5
    )
    broker = KafkaBroker(
        BOOTSTRAP,
        security=broker_security(kafka_settings(BOOTSTRAP, PRINCIPAL)),
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        logger=None,
    )
    await producer.start()
    await broker.start()

    async def with_aiokafka(batch: list[tuple[bytes, list[tuple[str, bytes]]]]) -> None:
        futures = [
            await producer.send(topic, BODY, key=key, headers=headers) for key, headers in batch
        ]
        await asyncio.gather(*futures)

    async def with_faststream(batch: list[tuple[bytes, list[tuple[str, bytes]]]]) -> None:
        await asyncio.gather(
            *(
                broker.publish(
                    BODY,
                    topic,
                    key=key,
                    headers={name: value.hex() for name, value in headers},
                )
                for key, headers in batch
            )
        )

    try:
        await timed(with_aiokafka, topic)  # warms the topic, the connections and the JIT
        await timed(with_faststream, topic)
        results: dict[str, list[float]] = {"aiokafka": [], "faststream": []}
        for _ in range(ROUNDS):
            results["aiokafka"].append(await timed(with_aiokafka, topic))
            results["faststream"].append(await timed(with_faststream, topic))
            results["faststream"].append(await timed(with_faststream, topic))
            results["aiokafka"].append(await timed(with_aiokafka, topic))
    finally:
        await broker.stop()
        await producer.stop()
    for name, values in results.items():
        print(
            f"{name:10} {statistics.median(values):6.1f} CPU ms per 1,000 records "
            f"({min(values):.1f}-{max(values):.1f}, {len(values)} runs of {RECORDS})"
        )
    ratio = statistics.median(results["faststream"]) / statistics.median(results["aiokafka"])
    print(f"publish_faststream_over_aiokafka={ratio:.2f}")


if __name__ == "__main__":
    asyncio.run(main())

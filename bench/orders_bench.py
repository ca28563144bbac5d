"""Orders benchmark: ingestion rate and accept latency, each beside a ceiling measured in the
same run on the same broker and database. Prints medians of several rounds and ratios, and
writes JSON under bench/results/.

Run with `make bench-orders` (infrastructure must be up: `make infra-up`).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from juniper_shared.contracts.registry import encode
from juniper_shared.testing import bearer, free_port, placed_order
from pymongo import AsyncMongoClient

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
MONGODB_URL = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017")
ORDERS = int(os.environ.get("BENCH_ORDERS", "3000"))
ACCEPTS = int(os.environ.get("BENCH_ACCEPTS", "200"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SELLER = "seller-bench"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def produce(topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        for key, value in payloads:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def noop_consumer_rate(payloads: list[tuple[bytes, bytes]]) -> float:
    """Ceiling: a FastStream batch subscriber that does nothing, committing per batch."""
    from faststream import AckPolicy
    from faststream.kafka.annotations import KafkaMessage

    topic = f"bench.noop.{uuid.uuid4().hex[:8]}"
    await produce(topic, payloads)
    broker = KafkaBroker(BOOTSTRAP, logger=None)
    seen = 0
    done = asyncio.Event()

    @broker.subscriber(
        topic,
        group_id=topic,
        batch=True,
        max_records=500,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_batch(body: Any, msg: KafkaMessage) -> None:
        nonlocal seen
        seen += len(msg.raw_message)
        if seen >= len(payloads):
            done.set()

    started = time.perf_counter()
    await broker.start()
    await asyncio.wait_for(done.wait(), timeout=120)
    elapsed = time.perf_counter() - started
    await broker.stop()
    return len(payloads) / elapsed


async def bare_update_latencies(count: int) -> list[float]:
    """Ceiling: one update_one by _id after another on the same database."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URL)
    collection = client[f"bench_{uuid.uuid4().hex[:8]}"]["docs"]
    await collection.insert_many([{"_id": f"d{i}", "version": 1} for i in range(count)])
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        await collection.update_one(
            {"_id": f"d{i}", "version": 1}, {"$set": {"version": 2, "status": "approved"}}
        )
        latencies.append(time.perf_counter() - started)
    await client.drop_database(collection.database.name)
    await client.close()
    return latencies


class OrdersProcess:
    """The orders service as a real process, on its own database and topic prefix."""

    def __init__(self) -> None:
        self.prefix = f"bench{uuid.uuid4().hex[:8]}."
        self.database = f"bench_orders_{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
            "MONGODB_URL": MONGODB_URL,
            "MONGODB_DATABASE": self.database,
            "KAFKA_TOPIC_PREFIX": self.prefix,
            "AUTH_JWT_SECRET": "dev-only-secret",
            "HTTP_PORT": str(self.port),
            "LOG_LEVEL": "WARNING",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orders"], env=env, stdout=subprocess.DEVNULL
        )
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                try:
                    if (await http.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("orders service did not become ready")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


async def ingestion_rate(service: OrdersProcess, payloads: list[tuple[bytes, bytes]]) -> float:
    """Placed orders published up front; time from consumer start to all stored."""
    await produce(service.prefix + "orders.placed", payloads)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URL)
    orders = client[service.database]["orders"]
    started = time.perf_counter()
    await service.start()
    while await orders.estimated_document_count() < len(payloads):
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    await client.close()
    return len(payloads) / elapsed


async def accept_latencies(service: OrdersProcess, order_ids: list[str]) -> list[float]:
    headers = bearer(SELLER)
    latencies = []
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{service.port}", headers=headers
    ) as http:
        for order_id in order_ids:
            started = time.perf_counter()
            response = await http.post(f"/v1/orders/{order_id}/accept")
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
    return latencies


async def one_round() -> dict[str, float]:
    events = [placed_order(seller_id=SELLER) for _ in range(ORDERS)]
    payloads = [(event.key().encode(), encode(event)) for event in events]
    noop_rate = await noop_consumer_rate(payloads)
    bare = await bare_update_latencies(ACCEPTS)
    service = OrdersProcess()
    # A known buyer for a gated seller: every order arrives pending and accepts without a customer choice.
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URL)
    await client[service.database]["buyer_links"].insert_one(
        {
            "_id": f"{SELLER}:buyer-1",
            "seller_id": SELLER,
            "buyer_id": "buyer-1",
            "customer_id": "cus-bench",
        }
    )
    try:
        rate = await ingestion_rate(service, payloads)
        accepts = await accept_latencies(
            service, [event.data.order_id for event in events[:ACCEPTS]]
        )
    finally:
        service.stop()
        await client.drop_database(service.database)
        await client.close()
    return {
        "ingest_orders_per_s": rate,
        "noop_consumer_msgs_per_s": noop_rate,
        "accept_p50_ms": 1000 * statistics.median(accepts),
        "accept_p99_ms": 1000 * percentile(accepts, 0.99),
        "bare_update_p50_ms": 1000 * statistics.median(bare),
        "bare_update_p99_ms": 1000 * percentile(bare, 0.99),
    }


async def main() -> None:
    rounds = [await one_round() for _ in range(ROUNDS)]
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    result = {
        "orders": ORDERS,
        "accepts": ACCEPTS,
        "rounds": rounds,
        "median": median,
        "ratios": {
            "ingest_vs_noop_consumer": median["ingest_orders_per_s"]
            / median["noop_consumer_msgs_per_s"],
            "accept_p50_vs_bare_update_p50": median["accept_p50_ms"] / median["bare_update_p50_ms"],
        },
    }
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "orders.json").write_text(json.dumps(result, indent=2))
    m, r = median, result["ratios"]
    print(f"rounds={ROUNDS} orders={ORDERS} accepts={ACCEPTS} (medians)")
    print(
        f"ingest: {m['ingest_orders_per_s']:.0f} orders/s; ceiling no-op FastStream consumer {m['noop_consumer_msgs_per_s']:.0f} msg/s; ratio {r['ingest_vs_noop_consumer']:.2f}"
    )
    print(
        f"accept over HTTP: p50 {m['accept_p50_ms']:.1f} ms, p99 {m['accept_p99_ms']:.1f} ms; ceiling bare update p50 {m['bare_update_p50_ms']:.2f} ms (p99 {m['bare_update_p99_ms']:.2f}); p50 ratio {r['accept_p50_vs_bare_update_p50']:.1f}x"
    )


if __name__ == "__main__":
    asyncio.run(main())

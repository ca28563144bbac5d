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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cpu import infra_cpu_seconds
from faststream.kafka import KafkaBroker
from juniper_ops import kafka_access
from juniper_shared.contracts.registry import encode
from juniper_shared.kafka import batch_records_of, broker_security
from juniper_testkit import (
    bearer,
    free_port,
    kafka_env,
    kafka_options,
    kafka_settings,
    placed_order,
)
from orders.adapters.customers import link_id
from pymongo import AsyncMongoClient

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
MONGODB_URL = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017")
HARNESS = "admin"
"""The bench's own clients (ceilings on topics of their own, counting) run as the broker's super
user; orders are placed as checkout and each service runs as its own principal."""
ORDERS = int(os.environ.get("BENCH_INGEST_ORDERS", "10000"))
ACCEPTS = int(os.environ.get("BENCH_ACCEPTS", "200"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PAGE_REQUESTS = int(os.environ.get("BENCH_PAGE_REQUESTS", "30"))
"""All Orders table requests per round, for the seller who then has every ingested order."""
SELLER = "seller-bench"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def produce(
    topic: str, payloads: list[tuple[bytes, bytes]], *, principal: str = HARNESS
) -> None:
    producer = AIOKafkaProducer(
        **kafka_options(BOOTSTRAP, principal), enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        for key, value in payloads:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def noop_consumer_rate(payloads: list[tuple[bytes, bytes]]) -> float:
    """Ceiling: a FastStream batch subscriber that does nothing, committing per batch (set up
    as the services' subscribers are: records undecoded)."""
    from faststream import AckPolicy

    topic = f"bench.noop.{uuid.uuid4().hex[:8]}"
    await produce(topic, payloads)
    broker = KafkaBroker(
        BOOTSTRAP, security=broker_security(kafka_settings(BOOTSTRAP, HARNESS)), logger=None
    )
    seen = 0
    done = asyncio.Event()

    @broker.subscriber(
        topic,
        group_id=topic,
        batch=True,
        max_records=500,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=batch_records_of,
    )
    async def on_batch(records: tuple[Any, ...]) -> None:
        nonlocal seen
        seen += len(records)
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
            **kafka_env("orders"),
        }
        await asyncio.to_thread(self._provision)
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

    def cpu_seconds(self) -> float:
        """User + system CPU the service process has used so far."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _provision(self) -> None:
        admin = kafka_access.connect(kafka_settings(BOOTSTRAP, "admin"))
        try:
            kafka_access.provision(admin, prefix=self.prefix)
        finally:
            admin.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


async def count_until(topic: str, expected: int, *, timeout: float = 300.0) -> float:
    """Reads `topic` from the start until `expected` messages arrived; returns when (perf_counter)."""
    consumer = AIOKafkaConsumer(
        topic,
        **kafka_options(BOOTSTRAP, HARNESS),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    give_up = time.perf_counter() + timeout
    try:
        while seen < expected:
            if time.perf_counter() > give_up:
                raise RuntimeError(f"{topic}: {seen} of {expected} messages after {timeout} s")
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            seen += sum(len(records) for records in batches.values())
        return time.perf_counter()
    finally:
        await consumer.stop()


def infra_ms_per_order(before: dict[str, float], count: int) -> dict[str, float]:
    """Kafka's, FerretDB's and PostgreSQL's CPU since `before`, in ms per order."""
    after = infra_cpu_seconds()
    return {name: 1000 * (after[name] - before[name]) / count for name in after}


async def composed_ceiling(payloads: list[tuple[bytes, bytes]]) -> tuple[float, dict[str, float]]:
    """Ceiling for ingestion, on the same broker and database: bare batch consume +
    `insert_many` of the decoded messages + produce each one on, one commit per batch.
    Timed like ingestion: the consumer is running before the burst is published. Returns the
    rate and the infrastructure's CPU per message."""
    run = uuid.uuid4().hex[:8]
    source, sink = f"bench.ceiling.{run}.in", f"bench.ceiling.{run}.out"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URL)
    collection = client[f"bench_ceiling_{run}"]["orders"]
    producer = AIOKafkaProducer(
        **kafka_options(BOOTSTRAP, HARNESS), enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    warm_up = placed_order(seller_id=SELLER)
    # Creates the topic and warms the path up (its own order: ids must not repeat).
    await produce(source, [(warm_up.key().encode(), encode(warm_up))])
    consumer = AIOKafkaConsumer(
        source,
        **kafka_options(BOOTSTRAP, HARNESS),
        group_id=f"bench-ceiling-{run}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    total = 0
    expected = len(payloads) + 1

    async def pipeline() -> None:
        nonlocal total
        while total < expected:
            batches = await consumer.getmany(timeout_ms=50, max_records=500)
            records = [record for part in batches.values() for record in part]
            if not records:
                continue
            documents = []
            for record in records:
                document = json.loads(record.value)
                document["_id"] = document["data"]["order_id"]
                documents.append(document)
            await collection.insert_many(documents, ordered=False)
            futures = [
                await producer.send(sink, record.value, key=record.key) for record in records
            ]
            await asyncio.gather(*futures)
            await consumer.commit()
            total += len(records)

    try:
        running = asyncio.create_task(pipeline())
        started, infra_before = time.perf_counter(), infra_cpu_seconds()
        await produce(source, payloads)
        await asyncio.wait_for(running, timeout=300)
        elapsed = time.perf_counter() - started
        infra = infra_ms_per_order(infra_before, len(payloads))
    finally:
        await consumer.stop()
        await producer.stop()
        await client.drop_database(collection.database.name)
        await client.close()
    return len(payloads) / elapsed, infra


async def ingestion_rate(
    service: OrdersProcess, payloads: list[tuple[bytes, bytes]]
) -> tuple[float, dict[str, float]]:
    """The orders service running and caught up; a burst of placed orders is published; the
    clock stops when every order was stored and its `order.*` event is on `orders.events`.
    Returns the rate and the infrastructure's CPU per order."""
    warm_up = placed_order(seller_id=SELLER)
    await produce(
        service.prefix + "orders.placed",
        [(warm_up.key().encode(), encode(warm_up))],
        principal="checkout",
    )
    events_topic = service.prefix + "orders.events"
    await count_until(events_topic, 1, timeout=60)  # the group has joined and works
    started, infra_before = time.perf_counter(), infra_cpu_seconds()
    counting = asyncio.create_task(count_until(events_topic, len(payloads) + 1))
    await produce(service.prefix + "orders.placed", payloads, principal="checkout")
    finished = await counting
    return len(payloads) / (finished - started), infra_ms_per_order(infra_before, len(payloads))


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


async def table_latencies(service: OrdersProcess) -> list[float]:
    """The seller's All Orders table (25 rows and the total), one request at a time: the first
    page, a deep page and the accepted orders, in turn. The seller has every ingested order."""
    views: list[dict[str, Any]] = [{}, {"page": 40}, {"status": "approved"}]
    latencies = []
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{service.port}", headers=bearer(SELLER), timeout=120
    ) as http:
        for request in range(PAGE_REQUESTS):
            started = time.perf_counter()
            response = await http.get("/v1/orders", params=views[request % len(views)])
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            assert response.json()["total_count"] in (ORDERS + 1, ACCEPTS), response.text
    return latencies


async def one_round() -> dict[str, float]:
    events = [placed_order(seller_id=SELLER) for _ in range(ORDERS)]
    payloads = [(event.key().encode(), encode(event)) for event in events]
    ceiling, ceiling_infra = await composed_ceiling(payloads)
    noop_rate = await noop_consumer_rate(payloads)
    bare = await bare_update_latencies(ACCEPTS)
    service = OrdersProcess()
    # A known buyer for a gated seller: every order arrives pending and accepts without a customer choice.
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URL)
    await client[service.database]["buyer_links"].insert_one(
        {
            "_id": link_id(SELLER, "buyer-1"),
            "seller_id": SELLER,
            "buyer_id": "buyer-1",
            "customer_id": "cus-bench",
        }
    )
    try:
        await service.start()
        cpu_before = service.cpu_seconds()
        rate, ingest_infra = await ingestion_rate(service, payloads)
        ingest_cpu_ms = 1000 * (service.cpu_seconds() - cpu_before) / ORDERS
        accepts = await accept_latencies(
            service, [event.data.order_id for event in events[:ACCEPTS]]
        )
        tables = await table_latencies(service)
    finally:
        service.stop()
        await client.drop_database(service.database)
        await client.close()
    return {
        "ingest_orders_per_s": rate,
        "ingest_ceiling_msgs_per_s": ceiling,
        "ingest_ratio": rate / ceiling,
        "ingest_service_cpu_ms_per_order": ingest_cpu_ms,
        **{f"ingest_{name}_cpu_ms_per_order": ms for name, ms in ingest_infra.items()},
        **{f"ceiling_{name}_cpu_ms_per_msg": ms for name, ms in ceiling_infra.items()},
        "noop_consumer_msgs_per_s": noop_rate,
        "accept_p50_ms": 1000 * statistics.median(accepts),
        "accept_p99_ms": 1000 * percentile(accepts, 0.99),
        "bare_update_p50_ms": 1000 * statistics.median(bare),
        "bare_update_p99_ms": 1000 * percentile(bare, 0.99),
        "table_p50_ms": 1000 * statistics.median(tables),
        "table_p99_ms": 1000 * percentile(tables, 0.99),
    }


def median_min_max(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def main() -> None:
    rounds = [await one_round() for _ in range(ROUNDS)]
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    result = {
        "at": datetime.now(UTC).isoformat(),
        "orders": ORDERS,
        "accepts": ACCEPTS,
        "rounds": rounds,
        "median": median,
        "spread": {key: median_min_max([r[key] for r in rounds]) for key in rounds[0]},
        "ratios": {
            "ingest_vs_composed_ceiling": median["ingest_ratio"],
            "ingest_vs_noop_consumer": median["ingest_orders_per_s"]
            / median["noop_consumer_msgs_per_s"],
            "accept_p50_vs_bare_update_p50": median["accept_p50_ms"] / median["bare_update_p50_ms"],
        },
    }
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "orders.json").write_text(json.dumps(result, indent=2))
    m, r, sp = median, result["ratios"], result["spread"]

    def figure(key: str, fmt: str) -> str:
        return f"{format(sp[key]['median'], fmt)} ({format(sp[key]['min'], fmt)}-{format(sp[key]['max'], fmt)})"

    print(f"ingest: {ORDERS} orders x {ROUNDS} rounds, medians (min-max)")
    print(f"  ingest rate            {figure('ingest_orders_per_s', '.0f')} orders/s")
    print(
        f"  composed ceiling       {figure('ingest_ceiling_msgs_per_s', '.0f')} msg/s "
        "(batch consume + insert_many + produce, same broker and database)"
    )
    print(f"  ingest / ceiling       {figure('ingest_ratio', '.2f')}")
    print(f"  orders service CPU     {figure('ingest_service_cpu_ms_per_order', '.2f')} ms/order")
    for name in ("kafka", "ferretdb", "postgres"):
        print(
            f"  {name + ' CPU':<22} {figure(f'ingest_{name}_cpu_ms_per_order', '.2f')} ms/order, "
            f"ceiling {figure(f'ceiling_{name}_cpu_ms_per_msg', '.2f')} ms/msg"
        )
    print(f"  no-op consumer         {figure('noop_consumer_msgs_per_s', '.0f')} msg/s")
    print(
        f"accept over HTTP: p50 {m['accept_p50_ms']:.1f} ms, p99 {m['accept_p99_ms']:.1f} ms; "
        f"bare update p50 {m['bare_update_p50_ms']:.2f} ms "
        f"(ratio {r['accept_p50_vs_bare_update_p50']:.1f}x)"
    )
    print(
        f"All Orders table of a seller with {ORDERS + 1} orders (first page, page 40, "
        f"status filter): p50 {figure('table_p50_ms', '.0f')} ms, "
        f"p99 {figure('table_p99_ms', '.0f')} ms"
    )
    print(
        f"ingest_orders_per_s={m['ingest_orders_per_s']:.0f} ingest_ratio={m['ingest_ratio']:.2f} "
        f"rounds={ROUNDS} orders={ORDERS}"
    )


if __name__ == "__main__":
    asyncio.run(main())

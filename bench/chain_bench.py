"""Full-chain benchmark: orders through every service, as separate processes, end to end.

Per order: checkout places it on Kafka -> orders stores it -> the seller accepts it, changes one
quantity and removes one line (HTTP) -> previews and confirms the invoice (HTTP) -> payments
charges the card at the sandbox -> the invoice is paid -> the All Orders row shows it paid ->
the buyer's receipt email arrives (an aiosmtpd inbox in this process).

Reports throughput (orders/s), per-stage latency p50/p95/p99, the ceilings measured in the
same run on the same broker and database (a FastStream no-op batch consumer's msg/s, a bare
`update_one` rate) as ratios, and the cost per order: CPU ms over every process of the stack
(services, sandbox, Kafka's JVM, FerretDB, PostgreSQL), database round trips and Kafka messages
produced. First, unmeasured: BENCH_BROKER_WARMUP_S (default 45) seconds of small produce
requests and committed fetches, as the services make them, so the broker's JIT has compiled its
hot paths (a broker started minutes before spends about twice the CPU per order it spends
warm); then BENCH_WARMUP_ORDERS (default 100) through the chain. Then BENCH_ROUNDS rounds
(default 3) on one running stack; medians. JSON and a PNG chart
go to bench/results/. The LAST line printed contains `orders_per_s=`.

The driver shares the two cores with the stack, so it is kept light: uvloop, as the services
run, and aiohttp's client (httpx's, through anyio, cost 60-70 CPU ms per order; this one
about 20).

Run with `make bench-chain` (or `make bench`); the infrastructure must be up (`make infra-up`).
Other runs on this machine share the CPUs, the broker and the database: the load average is
reported beside the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import AsyncMongoClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests/support: the process harness the e2e suite uses

from cpu import infra_cpu_seconds, proc_stat  # noqa: E402
from juniper_shared.contracts.registry import (  # noqa: E402
    INVOICES_EVENTS,
    ORDERS_EVENTS,
    ORDERS_PLACED,
    encode,
)
from juniper_testkit import bearer, kafka_options, placed_order  # noqa: E402
from orders_bench import (  # noqa: E402
    bare_update_latencies,
    median_min_max,
    noop_consumer_rate,
    percentile,
)

from tests.support.stack import JWT_SECRET, SERVICES, Email, Inbox, Stack  # noqa: E402

# The benchmark signs its tokens with the services' development secret.
warnings.filterwarnings("ignore", message="The HMAC key is")

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
MONGODB_URL = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017")
ORDERS = int(os.environ.get("BENCH_ORDERS", "200"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
OFFERED_PER_S = float(os.environ.get("BENCH_OFFERED_PER_S", "0"))
"""Above 0: open loop, orders start at this rate (latency under a given load) instead of
CONCURRENCY sellers working flat out (throughput)."""
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WARMUP_ORDERS = int(os.environ.get("BENCH_WARMUP_ORDERS", "100"))
"""Orders sent through the chain before the measured rounds, not counted."""
BROKER_WARMUP_SECONDS = float(os.environ.get("BENCH_BROKER_WARMUP_S", "45"))
"""Seconds of produce and fetch traffic before the chain warm-up, not counted."""
DATABASE_SIZES = [int(size) for size in os.environ.get("BENCH_DB_SIZES", "1000,20000").split(",")]
"""Orders the database holds before each series of rounds (growth: the same rounds at each)."""
FILLER_SELLER = "seller-bench-filler"
ORDERS_PER_SELLER = 10
"""Sellers are many and small, so an order's All Orders row is on the first page."""
BARE_UPDATES = 300
STEP_TIMEOUT = 120.0
"""Bound on any one wait of one order (a stuck order fails the run instead of hanging it)."""
STAGES = (
    "placed_to_stored",
    "accept",
    "preview",
    "confirm_to_paid",
    "paid_to_email",
    "accept_to_paid",
)
SHIPPING = {
    "carrier": "UPS",
    "tracking_number": "1Z999AA10123456784",
    "shipped_at": datetime.now(UTC).date().isoformat(),
    "shipping_cost": "15.00",
}
ITEMS = [
    {"sku": "MUG-1", "name": "Stoneware mug", "unit_price": "12.50", "quantity": 4},
    {"sku": "TEA-2", "name": "Green tea tin", "unit_price": "8.00", "quantity": 2},
    {"sku": "BWL-3", "name": "Serving bowl", "unit_price": "21.00", "quantity": 1},
]


# --- what happened when: Kafka events and emails, seen as they come -------------------------


class Signals:
    """Times of named happenings (`("stored", order_id)`, ...), awaitable by the order's flow."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._seen: dict[tuple[str, str], float] = {}
        self._waiting: dict[tuple[str, str], asyncio.Future[float]] = {}

    def mark(self, what: str, key: str, at: float) -> None:
        self._seen.setdefault((what, key), at)
        waiter = self._waiting.pop((what, key), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(self._seen[(what, key)])

    def mark_threadsafe(self, what: str, key: str, at: float) -> None:
        self._loop.call_soon_threadsafe(self.mark, what, key, at)

    async def wait(self, what: str, key: str) -> float:
        if (what, key) in self._seen:
            return self._seen[(what, key)]
        waiter = self._waiting.setdefault((what, key), self._loop.create_future())
        return await asyncio.wait_for(asyncio.shield(waiter), timeout=STEP_TIMEOUT)


async def listen(stack: Stack, signals: Signals, ready: asyncio.Event) -> None:
    """order.received and invoice.paid, timed by the broker's record timestamp (the moment the
    service produced them), read from the end of the topics onwards."""
    consumer = AIOKafkaConsumer(**kafka_options(BOOTSTRAP, "ops"), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(stack.topic_prefix + topic.name, p)
            for topic in (ORDERS_EVENTS, INVOICES_EVENTS)
            for p in range(stack.partitions)
        ]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)
        ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batches.values():
                for record in records:
                    kind = dict(record.headers or ()).get("type", b"").decode()
                    if kind == "order.received":
                        data = json.loads(record.value)["data"]
                        signals.mark("stored", data["order"]["order_id"], record.timestamp / 1000)
                    elif kind == "invoice.paid":
                        data = json.loads(record.value)["data"]
                        signals.mark("paid", data["order_id"], record.timestamp / 1000)
    finally:
        await consumer.stop()


RECEIPT = re.compile(r"^Receipt: ")


# --- the broker's JIT -----------------------------------------------------------------------


def producer_and_group_consumer(
    topic: str, **consumer_options: Any
) -> tuple[AIOKafkaProducer, AIOKafkaConsumer]:
    """An idempotent producer (`acks=all`, 5 ms linger) and a consumer group of its own reading
    `topic` from the start and committing by hand, as the services make them; not started."""
    # The super user: the topic is the bench's own, created by producing to it.
    producer = AIOKafkaProducer(
        **kafka_options(BOOTSTRAP, "admin"), enable_idempotence=True, acks="all", linger_ms=5
    )
    consumer = AIOKafkaConsumer(
        topic,
        **kafka_options(BOOTSTRAP, "admin"),
        group_id=topic,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **consumer_options,
    )
    return producer, consumer


async def warm_broker(seconds: float) -> int:
    """Small idempotent produce requests from 16 senders at once, and a group consumer that
    commits after every fetch, for `seconds`: the request kinds the services make, enough of
    them for the JVM to compile their paths. Returns how many records went through."""
    topic = f"bench.warm.{uuid.uuid4().hex[:8]}"
    value = b"x" * 1024
    producer, consumer = producer_and_group_consumer(topic)
    await producer.start()
    await consumer.start()
    stop_at = time.monotonic() + seconds
    sent = 0

    async def sender() -> None:
        nonlocal sent
        while time.monotonic() < stop_at:
            await producer.send_and_wait(topic, value, key=str(sent % 64).encode())
            sent += 1

    async def receiver() -> None:
        while time.monotonic() < stop_at:
            if await consumer.getmany(timeout_ms=20, max_records=50):
                await consumer.commit()

    try:
        await asyncio.gather(receiver(), *(sender() for _ in range(16)))
    finally:
        await consumer.stop()
        await producer.stop()
    return sent


# --- the cost of the stack ------------------------------------------------------------------


def stack_cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of every process the chain runs on, by component."""
    cpu: dict[str, float] = {}
    for name, process in stack.processes.items():
        found = proc_stat(process.pid) if process.pid else None
        cpu[name] = found[2] if found else 0.0
    return cpu | infra_cpu_seconds()


METRIC_LINE = re.compile(r"^(jm_[a-z_]+_total)(?:\{([^}]*)\})? ([0-9.e+]+)$", re.MULTILINE)
LABEL = re.compile(r'([a-z_]+)="([^"]*)"')


async def service_counters(stack: Stack, http: aiohttp.ClientSession) -> dict[str, float]:
    """Sums over the four services: database round trips, events published, dead letters; and
    round trips per `service:command:collection`, to see where they go."""
    totals = {"db": 0.0, "db_writes": 0.0, "published": 0.0, "dead_letters": 0.0}
    wanted = {
        "jm_db_commands_total": "db",
        "jm_db_documents_written_total": "db_writes",
        "jm_messages_published_total": "published",
        "jm_dead_letters_total": "dead_letters",
    }
    for name in SERVICES:
        text = (await send(http, "GET", stack.url(name) + "/metrics")).text
        for metric, labels, value in METRIC_LINE.findall(text):
            if metric in wanted:
                totals[wanted[metric]] += float(value)
            if metric == "jm_db_commands_total":
                label = dict(LABEL.findall(labels))
                key = f"db:{name}:{label.get('command')}:{label.get('collection')}"
                totals[key] = totals.get(key, 0.0) + float(value)
            if metric == "jm_db_documents_written_total":
                key = f"written:{name}:{dict(LABEL.findall(labels)).get('collection')}"
                totals[key] = totals.get(key, 0.0) + float(value)
    return totals


# --- one order, one round -------------------------------------------------------------------


@dataclass
class Timings:
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    stale_previews: int = 0
    """Orders whose first previews showed the lines from before the seller's edits (invoicing
    had not yet consumed `order.updated`); the seller pressed again until they matched."""


@dataclass(frozen=True)
class Answer:
    """A response, read whole: the driver looks at every body it gets."""

    status_code: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def http_client() -> aiohttp.ClientSession:
    """The driver's HTTP client: aiohttp, whose client costs about half of httpx's per request
    (httpx goes through anyio), and the driver shares the two cores with the stack it
    measures. Idle connections are dropped after 4 s, before uvicorn closes them (5 s)."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30),
        connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2, keepalive_timeout=4),
    )


async def send(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    body: Any = None,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request; sent again (same Idempotency-Key) when a pooled keep-alive connection was
    closed by the server just as it was reused."""
    headers = dict(headers or {})
    if method in ("POST", "PATCH"):
        headers["Idempotency-Key"] = uuid.uuid4().hex
    for attempt in range(3):
        try:
            async with http.request(
                method, url, json=body, params=params, headers=headers
            ) as response:
                return Answer(response.status, await response.read())
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def retry_until(
    attempt: Callable[[], Awaitable[Answer]], accept: Callable[[Answer], bool]
) -> Answer:
    """Tries again, waiting 50 ms, then longer (up to 400 ms), as a person's page would."""
    give_up = time.monotonic() + STEP_TIMEOUT
    pause = 0.05
    while True:
        response = await attempt()
        if accept(response):
            return response
        if time.monotonic() > give_up:
            raise RuntimeError(f"gave up: {response.status_code} {response.text[:300]}")
        await asyncio.sleep(pause)
        pause = min(0.4, pause * 2)


async def one_order(
    stack: Stack,
    http: aiohttp.ClientSession,
    producer: AIOKafkaProducer,
    signals: Signals,
    seller_id: str,
    timings: Timings,
) -> None:
    headers = bearer(seller_id, JWT_SECRET)
    orders, invoicing = stack.url("orders"), stack.url("invoicing")
    buyer = f"buyer-{uuid.uuid4().hex[:12]}"
    order = placed_order(
        seller_id=seller_id,
        seller_name="Juniper Pottery",
        buyer={
            "id": buyer,
            "name": "Ada Buyer",
            "email": f"{buyer}@example.com",
            "company": "Maple & Co",
        },
        items=ITEMS,
    )
    order_id = order.data.order_id
    placed = time.time()
    await producer.send_and_wait(
        stack.topic_prefix + ORDERS_PLACED.name,
        encode(order),
        key=order.key().encode(),
        headers=[("type", order.type.encode())],
    )
    stored = await signals.wait("stored", order_id)
    timings.stages["placed_to_stored"].append(stored - placed)

    def post(path: str, body: dict[str, Any] | None = None) -> Awaitable[Answer]:
        return send(http, "POST", path, body=body, headers=headers)

    accepting = time.time()
    started = time.perf_counter()
    # A buyer new to the seller: accepting creates the customer, as the portal's dialog does.
    customer = {"create": {"name": "Maple & Co", "email": f"{buyer}@example.com"}}
    accepted = await post(f"{orders}/v1/orders/{order_id}/accept", {"customer": customer})
    timings.stages["accept"].append(time.perf_counter() - started)
    assert accepted.status_code == 200, accepted.text
    lines = [item["line_id"] for item in accepted.json()["items"]]
    changed = await send(
        http,
        "PATCH",
        f"{orders}/v1/orders/{order_id}/items",
        body={"items": [{"line_id": lines[0], "quantity": 6}]},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    removed = await post(f"{orders}/v1/orders/{order_id}/items/remove", {"line_ids": [lines[2]]})
    assert removed.status_code == 200, removed.text
    subtotal = removed.json()["subtotal"]  # 6 x 12.50 + 2 x 8.00 = 91.00

    started = time.perf_counter()

    stale = False

    def current_draft(response: Answer) -> bool:
        nonlocal stale
        if response.status_code != 200:
            return False
        if response.json()["subtotal"] != subtotal:
            stale = True
            return False
        return True

    # As the portal does: name the order version the seller saw, so invoicing waits for its
    # read model to catch up instead of drafting from the lines before the edits.
    version = removed.json()["version"]
    draft = await retry_until(
        lambda: post(
            f"{invoicing}/v1/orders/{order_id}/invoice/preview",
            {"shipping": SHIPPING, "order_version": version},
        ),
        current_draft,
    )
    timings.stages["preview"].append(time.perf_counter() - started)
    timings.stale_previews += stale
    invoice_id = draft.json()["invoice_id"]

    confirming = time.time()
    confirmed = await post(f"{invoicing}/v1/invoices/{invoice_id}/confirm")
    assert confirmed.status_code == 200, confirmed.text
    paid = await signals.wait("paid", order_id)
    timings.stages["confirm_to_paid"].append(paid - confirming)
    timings.stages["accept_to_paid"].append(paid - accepting)

    def order_paid(response: Answer) -> bool:
        return response.status_code == 200 and response.json()["payment_status"] == "paid"

    def row_paid(response: Answer) -> bool:
        rows = [r for r in response.json()["items"] if r["order_id"] == order_id]
        return bool(rows) and rows[0]["payment_status"] == "paid"

    # The seller's order page until it shows paid (a seller watching this one order), then
    # the All Orders table once, where the row must show it paid too.
    await retry_until(
        lambda: send(http, "GET", f"{orders}/v1/orders/{order_id}", headers=headers), order_paid
    )
    await retry_until(
        lambda: send(
            http, "GET", f"{orders}/v1/orders", params={"page_size": 100}, headers=headers
        ),
        row_paid,
    )
    emailed = await signals.wait("receipt", f"{buyer}@example.com")
    timings.stages["paid_to_email"].append(emailed - paid)


async def fill_to(stack: Stack, size: int) -> float:
    """Brings the database to `size` orders through the real path (filler orders placed on
    Kafka for an ungated seller: stored pending, no email), and waits until the orders service
    and invoicing's read model hold them all. Returns the seconds it took."""
    started = time.perf_counter()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URL)
    orders = client[stack.databases[SERVICES.index("orders")]]["orders"]
    read_model = client[stack.databases[SERVICES.index("invoicing")]]["orders"]
    async with http_client() as http:
        response = await send(
            http,
            "PUT",
            stack.url("orders") + "/v1/seller/settings",
            body={"buyer_access_requires_approval": False},
            headers=bearer(FILLER_SELLER, JWT_SECRET),
        )
        assert response.status_code == 200, response.text
    missing = size - await orders.estimated_document_count()
    if missing > 0:
        producer = AIOKafkaProducer(**kafka_options(BOOTSTRAP, "checkout"), linger_ms=20)
        await producer.start()
        for _ in range(missing):
            order = placed_order(seller_id=FILLER_SELLER, items=ITEMS)
            await producer.send(
                stack.topic_prefix + ORDERS_PLACED.name,
                encode(order),
                key=order.key().encode(),
                headers=[("type", order.type.encode())],
            )
        await producer.flush()
        await producer.stop()
    give_up = time.monotonic() + 600
    for collection in (orders, read_model):
        while await collection.estimated_document_count() < size:
            if time.monotonic() > give_up:
                raise RuntimeError(f"database not filled to {size} orders in 600 s")
            await asyncio.sleep(0.5)
    await client.close()
    return time.perf_counter() - started


def summarise(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": 1000 * percentile(values, 0.50),
        "p95_ms": 1000 * percentile(values, 0.95),
        "p99_ms": 1000 * percentile(values, 0.99),
    }


async def one_round(
    stack: Stack, signals: Signals, number: int, orders: int = ORDERS
) -> dict[str, Any]:
    timings = Timings()
    sellers = [
        f"seller-bench-{number}-{uuid.uuid4().hex[:6]}"
        for _ in range(max(1, -(-orders // ORDERS_PER_SELLER)))
    ]
    gate = asyncio.Semaphore(CONCURRENCY)
    producer = AIOKafkaProducer(
        **kafka_options(BOOTSTRAP, "checkout"), enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    async with http_client() as http:
        for seller in sellers:  # not gated: an order from a new buyer waits for the seller
            response = await send(
                http,
                "PUT",
                stack.url("orders") + "/v1/seller/settings",
                body={"buyer_access_requires_approval": False},
                headers=bearer(seller, JWT_SECRET),
            )
            assert response.status_code == 200, response.text
        counters_before = await service_counters(stack, http)
        cpu_before = stack_cpu_seconds(stack)
        driver_before = time.process_time()
        started = time.perf_counter()

        async def flow(n: int) -> None:
            if OFFERED_PER_S > 0:  # open loop: order n arrives at n / rate, whatever is pending
                await asyncio.sleep(started + n / OFFERED_PER_S - time.perf_counter())
                await one_order(stack, http, producer, signals, sellers[n % len(sellers)], timings)
                return
            async with gate:
                await one_order(stack, http, producer, signals, sellers[n % len(sellers)], timings)

        await asyncio.gather(*(flow(n) for n in range(orders)))
        elapsed = time.perf_counter() - started
        # Cost of the chain itself: read once the last receipt went out.
        cpu_after = stack_cpu_seconds(stack)
        driver_cpu = time.process_time() - driver_before
        counters_after = await service_counters(stack, http)
    await producer.stop()
    cpu_ms = {name: 1000 * (cpu_after[name] - cpu_before[name]) / orders for name in cpu_after}
    payloads = [
        (event.key().encode(), encode(event))
        for event in (placed_order(seller_id="seller-noop") for _ in range(orders * 10))
    ]
    noop = await noop_consumer_rate(payloads)
    bare = await bare_update_latencies(BARE_UPDATES)
    load1, load5, _ = os.getloadavg()
    return {
        "orders_per_s": orders / elapsed,
        "elapsed_s": elapsed,
        "stages": {stage: summarise(timings.stages[stage]) for stage in STAGES},
        "stale_previews": timings.stale_previews,
        "noop_consumer_msgs_per_s": noop,
        "bare_update_per_s": len(bare) / sum(bare),
        "bare_update_p50_ms": 1000 * statistics.median(bare),
        "cpu_ms_per_order": cpu_ms,
        "cpu_ms_per_order_total": sum(cpu_ms.values()),
        "services_cpu_ms_per_order": sum(cpu_ms[name] for name in SERVICES),
        "driver_cpu_ms_per_order": 1000 * driver_cpu / orders,
        "db_round_trips_per_order": (counters_after["db"] - counters_before["db"]) / orders,
        "db_writes_per_order": (counters_after["db_writes"] - counters_before["db_writes"])
        / orders,
        "db_round_trips_per_order_by_command": {
            key.removeprefix("db:"): round(
                (counters_after[key] - counters_before.get(key, 0.0)) / orders, 2
            )
            for key in sorted(counters_after)
            if key.startswith("db:") and counters_after[key] > counters_before.get(key, 0.0)
        },
        "db_writes_per_order_by_collection": {
            key.removeprefix("written:"): round(
                (counters_after[key] - counters_before.get(key, 0.0)) / orders, 2
            )
            for key in sorted(counters_after)
            if key.startswith("written:") and counters_after[key] > counters_before.get(key, 0.0)
        },
        "kafka_messages_per_order": 1  # the placed order itself
        + (
            counters_after["published"]
            + counters_after["dead_letters"]
            - counters_before["published"]
            - counters_before["dead_letters"]
        )
        / orders,
        "load_average_1m_5m": [load1, load5],
    }


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    median = result["median"]
    fig, (latency, rate) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.27
    for i, pct in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        values = [median["stages"][stage][pct] for stage in STAGES]
        latency.bar([x + (i - 1) * width for x in range(len(STAGES))], values, width, label=pct)
    latency.set_xticks(range(len(STAGES)), [s.replace("_", " ") for s in STAGES], fontsize=8)
    latency.set_ylabel("ms")
    latency.set_title(f"Stage latency (median of {len(result['rounds'])} rounds)")
    latency.legend()
    names = ["chain\norders/s", "no-op consumer\nmsg/s", "bare update_one\n/s"]
    values = [
        median["orders_per_s"],
        median["noop_consumer_msgs_per_s"],
        median["bare_update_per_s"],
    ]
    rate.bar(names, values, color=["tab:green", "tab:gray", "tab:gray"])
    rate.set_yscale("log")
    for x, value in enumerate(values):
        rate.text(x, value, f"{value:.3g}", ha="center", va="bottom")
    rate.set_title(
        f"Throughput vs ceilings ({result['orders']} orders, concurrency {result['concurrency']})"
    )
    fig.suptitle(
        f"cost per order: {median['cpu_ms_per_order_total']:.0f} CPU ms, "
        f"{median['db_round_trips_per_order']:.1f} DB round trips, "
        f"{median['kafka_messages_per_order']:.1f} Kafka messages; "
        f"load avg {median['load_average_1m']:.1f} on {os.cpu_count()} CPUs"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def main() -> None:
    loop = asyncio.get_running_loop()
    signals = Signals(loop)

    def on_email(mail: Email) -> None:
        if RECEIPT.search(mail.subject):
            for to in mail.to:
                signals.mark_threadsafe("receipt", to, mail.received_at)

    inbox = Inbox(on_email=on_email, headers_only=True)
    inbox.start()
    log_dir = Path(tempfile.mkdtemp(prefix="jm-chain-bench-"))
    stack = Stack.plan(
        kafka_bootstrap=BOOTSTRAP,
        mongodb_url=MONGODB_URL,
        inbox=inbox,
        log_dir=log_dir,
        label="bench",
        # As deployed: INFO logs off the hot path, the outbox poller at its default pace.
        extra_env={"LOG_LEVEL": "WARNING", "OUTBOX_POLL_SECONDS": "5"},
    )
    series: dict[int, list[dict[str, Any]]] = {}
    fill_seconds: dict[int, float] = {}
    try:
        await stack.start()
        ready = asyncio.Event()
        listener = asyncio.create_task(listen(stack, signals, ready))
        await asyncio.wait_for(ready.wait(), timeout=30)
        if BROKER_WARMUP_SECONDS > 0:
            records = await warm_broker(BROKER_WARMUP_SECONDS)
            print(
                f"broker warm-up: {records} records in {BROKER_WARMUP_SECONDS:.0f} s (not measured)"
            )
        if WARMUP_ORDERS > 0:
            # Not measured: the JVM's JIT, connection pools and caches settle first.
            await one_round(stack, signals, -1, WARMUP_ORDERS)
            print(f"warm-up: {WARMUP_ORDERS} orders through the chain (not measured)")
        for size in DATABASE_SIZES:
            fill_seconds[size] = await fill_to(stack, size)
            print(f"database holds {size} orders (filled in {fill_seconds[size]:.0f} s)")
            series[size] = []
            for number in range(ROUNDS):
                series[size].append(await one_round(stack, signals, number))
                r = series[size][-1]
                print(
                    f"  round {number + 1}/{ROUNDS}: {r['orders_per_s']:.2f} orders/s "
                    f"({r['elapsed_s']:.1f} s), {r['cpu_ms_per_order_total']:.0f} CPU ms/order, "
                    f"{r['db_round_trips_per_order']:.1f} DB round trips/order, "
                    f"load {r['load_average_1m_5m'][0]:.1f}",
                    flush=True,
                )
        listener.cancel()
    except BaseException:
        print(stack.log_tails(20), file=sys.stderr)
        raise
    finally:
        await stack.stop()
        inbox.stop()

    rounds = series[DATABASE_SIZES[0]]
    """The headline figures come from the smallest database; the others show growth."""
    stages = {
        stage: {
            pct: statistics.median(r["stages"][stage][pct] for r in rounds)
            for pct in ("p50_ms", "p95_ms", "p99_ms")
        }
        for stage in STAGES
    }
    scalar = (
        "orders_per_s",
        "noop_consumer_msgs_per_s",
        "bare_update_per_s",
        "bare_update_p50_ms",
        "cpu_ms_per_order_total",
        "driver_cpu_ms_per_order",
        "db_round_trips_per_order",
        "db_writes_per_order",
        "services_cpu_ms_per_order",
        "kafka_messages_per_order",
        "stale_previews",
    )
    median: dict[str, Any] = {key: statistics.median(r[key] for r in rounds) for key in scalar}
    median["stages"] = stages
    median["cpu_ms_per_order"] = {
        name: statistics.median(r["cpu_ms_per_order"][name] for r in rounds)
        for name in rounds[0]["cpu_ms_per_order"]
    }
    median["load_average_1m"] = statistics.median(r["load_average_1m_5m"][0] for r in rounds)
    ratios = {
        "orders_per_s_vs_noop_consumer_msgs_per_s": median["orders_per_s"]
        / median["noop_consumer_msgs_per_s"],
        "orders_per_s_vs_bare_update_per_s": median["orders_per_s"] / median["bare_update_per_s"],
        # Kafka messages the chain moved per second against what a no-op consumer takes.
        "chain_msgs_per_s_vs_noop_consumer": median["orders_per_s"]
        * median["kafka_messages_per_order"]
        / median["noop_consumer_msgs_per_s"],
        # Round trips the chain made per second against one client's serial update rate.
        "chain_db_round_trips_per_s_vs_bare_update_per_s": median["orders_per_s"]
        * median["db_round_trips_per_order"]
        / median["bare_update_per_s"],
    }
    spread = {key: median_min_max([r[key] for r in rounds]) for key in scalar}
    spread["accept_to_paid_p99_ms"] = median_min_max(
        [r["stages"]["accept_to_paid"]["p99_ms"] for r in rounds]
    )
    growth = {
        str(size): {
            "orders_per_s": statistics.median(r["orders_per_s"] for r in size_rounds),
            "orders_per_s_min": min(r["orders_per_s"] for r in size_rounds),
            "orders_per_s_max": max(r["orders_per_s"] for r in size_rounds),
            "cpu_ms_per_order": statistics.median(r["cpu_ms_per_order_total"] for r in size_rounds),
            "db_round_trips_per_order": statistics.median(
                r["db_round_trips_per_order"] for r in size_rounds
            ),
        }
        for size, size_rounds in series.items()
    }
    smallest, largest = str(DATABASE_SIZES[0]), str(DATABASE_SIZES[-1])
    growth_ratio = growth[largest]["orders_per_s"] / growth[smallest]["orders_per_s"]
    result = {
        "at": datetime.now(UTC).isoformat(),
        "orders": ORDERS,
        "concurrency": CONCURRENCY,
        "offered_orders_per_s": OFFERED_PER_S or None,
        "cpus": os.cpu_count(),
        "database_sizes": DATABASE_SIZES,
        "rounds": rounds,
        "median": median,
        "spread": spread,
        "ratios": ratios,
        "growth": growth,
        "growth_ratio": growth_ratio,
        "series": {str(size): size_rounds for size, size_rounds in series.items()},
    }
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "chain.json").write_text(json.dumps(result, indent=2))
    chart(result, out / "chain.png")

    m = median
    print(
        f"chain: {ORDERS} orders x {ROUNDS} rounds, concurrency {CONCURRENCY}, database of "
        f"{DATABASE_SIZES[0]} orders (medians)"
    )
    print("stage latency ms          p50      p95      p99")
    for stage in STAGES:
        s = stages[stage]
        print(f"  {stage:<20} {s['p50_ms']:8.1f} {s['p95_ms']:8.1f} {s['p99_ms']:8.1f}")
    print(
        f"ceilings: no-op FastStream consumer {m['noop_consumer_msgs_per_s']:.0f} msg/s; "
        f"bare update_one {m['bare_update_per_s']:.0f}/s (p50 {m['bare_update_p50_ms']:.2f} ms)"
    )
    print("ratios: " + ", ".join(f"{name} {value:.4f}" for name, value in ratios.items()))
    cpu = ", ".join(f"{name} {ms:.1f}" for name, ms in m["cpu_ms_per_order"].items())
    print(
        f"cost per order: CPU {m['cpu_ms_per_order_total']:.1f} ms ({cpu}; driver "
        f"{m['driver_cpu_ms_per_order']:.1f} ms not counted), "
        f"DB round trips {m['db_round_trips_per_order']:.1f} "
        f"({m['db_writes_per_order']:.1f} documents written), "
        f"Kafka messages {m['kafka_messages_per_order']:.1f}"
    )
    print(
        f"orders whose first preview missed the edits: {m['stale_previews']:.0f} of {ORDERS} "
        "per round (median)"
    )
    print(
        f"load average (1 min) {m['load_average_1m']:.2f} on {os.cpu_count()} CPUs; "
        f"JSON and PNG in {out.relative_to(REPO)}/"
    )
    for size, figures in growth.items():
        print(
            f"growth: database of {size} orders: {figures['orders_per_s']:.2f} orders/s "
            f"({figures['orders_per_s_min']:.2f}-{figures['orders_per_s_max']:.2f}), "
            f"{figures['cpu_ms_per_order']:.0f} CPU ms/order, "
            f"{figures['db_round_trips_per_order']:.1f} DB round trips/order"
        )
    print(f"growth: throughput at {largest} vs {smallest} orders: {growth_ratio:.2f}")
    print(
        f"orders_per_s={m['orders_per_s']:.2f} cpu_ms_per_order={m['cpu_ms_per_order_total']:.0f} "
        f"db_round_trips_per_order={m['db_round_trips_per_order']:.1f} "
        f"kafka_messages_per_order={m['kafka_messages_per_order']:.1f} "
        f"rounds={ROUNDS} orders={ORDERS} concurrency={CONCURRENCY}"
    )


if __name__ == "__main__":
    # uvloop, as the services run: the driver's own event loop costs less CPU on it.
    uvloop.run(main())

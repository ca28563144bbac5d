"""The floor: the least CPU an order can cost on this machine's parts, with no code of ours.

Issue 11 asks for at most 20 CPU ms per order over every process of the stack, and 100
orders/s on two cores (which is the same budget: 2,000 CPU ms per second / 100). This
benchmark prices the parts one order of the flow cannot do without, each measured bare, on
the same broker and database the chain benchmark uses:

- a database write: a version-guarded update by `_id` of a 1 KB document through PyMongo's
  `AsyncMongoClient` (FerretDB's, PostgreSQL's and the client's CPU), the cheapest of three
  ways: one `update_one` at a time, 8 at a time, or 50 to a `bulk_write` (group commit);
- an HTTP request: the server's CPU for one POST to a minimal FastAPI app (a path parameter, a
  JSON body, a JSON response; no middleware, no authentication) on uvicorn with uvloop and
  httptools, as the services run, over keep-alive connections, 8 at a time;
- a Kafka message: 1 KB records produced with aiokafka (idempotent, `acks=all`, batched) and
  consumed by a group in batches of up to 500 with one commit per batch: the broker's CPU and
  the producing and consuming clients'.

The floor multiplies them by what the issue's own targets allow per order: 10 writes (its 10
round trips, one write each; the flow needs more writes than that), 8 messages (each consumed
once, though three services read most of them), and 6 requests (the five seller steps and one
read of the All Orders row). Nothing else counts: no validation,
no JSON of events, no authentication, no email, no card call, no application logic. Generous
on purpose: if even this exceeds 20 ms, the target is below what the parts cost here.

Run with `make bench-floor` (part of `make bench`); the infrastructure must be up. JSON goes to
bench/results/floor.json. The last line printed contains `floor_cpu_ms_per_order=`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn
import uvloop
from chain_bench import producer_and_group_consumer
from cpu import infra_cpu_seconds, proc_stat
from fastapi import FastAPI
from orders_bench import median_min_max
from pydantic import BaseModel
from pymongo import AsyncMongoClient, UpdateOne

MONGODB_URL = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WRITES = 2_000
BULK = 50
REQUESTS = 3_000
MESSAGES = 20_000
CONCURRENCY = 8

WRITES_PER_ORDER = 10
"""The issue's target for database round trips per order, each carrying one write (the flow
writes more than that: every step stores its state once, payments its attempt before the card
call and emails their pending record before sending)."""
MESSAGES_PER_ORDER = 8
"""The issue's target for Kafka messages produced per order, each consumed once."""
REQUESTS_PER_ORDER = 6
"""Accept, change a quantity, remove a line, preview, confirm; one read of the All Orders row."""
CPU_BUDGET_MS = 20.0
CPUS = os.cpu_count() or 1


def own_cpu_seconds() -> float:
    return time.process_time()


def order_like_document(number: int) -> dict[str, Any]:
    """About 1 KB, shaped like a stored order (the chain's are larger)."""
    return {
        "_id": f"ord-{number:08d}",
        "version": 1,
        "seller_id": "seller-floor",
        "status": "pending",
        "buyer": {"id": "buyer-1", "name": "Corner Shop", "email": "buyer@example.com"},
        "items": [
            {"sku": f"SKU-{line}", "name": "Stoneware mug", "unit_price": 1250, "quantity": 4}
            for line in range(8)
        ],
        "notes": "x" * 300,
    }


async def database_write(concurrency: int, statements_per_command: int) -> dict[str, float]:
    """CPU ms per version-guarded update by `_id`: FerretDB's, PostgreSQL's and the client's.
    `concurrency` commands in flight; each an `update_one`, or a `bulk_write` of
    `statements_per_command` updates (group commit, as the services do across orders)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URL)
    database = f"bench_floor_{uuid.uuid4().hex[:8]}"
    collection = client[database]["orders"]
    documents = 500
    await collection.insert_many([order_like_document(number) for number in range(documents)])
    versions = [1] * documents
    for number in range(documents):  # one update each first: the rows' first rewrite
        versions[number] += 1
        await collection.update_one(
            {"_id": f"ord-{number:08d}", "version": versions[number] - 1},
            {"$set": {"version": versions[number]}},
        )

    def update(step: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The filter and the change of one version-guarded update."""
        number = step % documents
        versions[number] += 1
        return (
            {"_id": f"ord-{number:08d}", "version": versions[number] - 1},
            {"$set": {"version": versions[number], "status": "approved"}},
        )

    async def worker(first: int) -> None:
        stride = concurrency * statements_per_command
        for start in range(first * statements_per_command, WRITES, stride):
            steps = range(start, min(start + statements_per_command, WRITES))
            if statements_per_command == 1:
                modified = (await collection.update_one(*update(start))).modified_count
            else:
                updates = [UpdateOne(*update(step)) for step in steps]
                modified = (await collection.bulk_write(updates, ordered=False)).modified_count
            if modified != len(steps):
                raise RuntimeError(f"{len(steps)} updates from {start} changed {modified}")

    before, own_before = infra_cpu_seconds(), own_cpu_seconds()
    await asyncio.gather(*(worker(first) for first in range(concurrency)))
    after, own_after = infra_cpu_seconds(), own_cpu_seconds()
    await client.drop_database(database)
    await client.close()
    per = 1000 / WRITES
    figures = {
        "ferretdb_ms": (after["ferretdb"] - before["ferretdb"]) * per,
        "postgres_ms": (after["postgres"] - before["postgres"]) * per,
        "client_ms": (own_after - own_before) * per,
    }
    figures["total_ms"] = sum(figures.values())
    return figures


# --- HTTP: a minimal FastAPI app in its own process -----------------------------------------


class CustomerChoice(BaseModel):
    customer_id: str | None = None


class Line(BaseModel):
    sku: str
    quantity: int
    unit_price: str


class OrderView(BaseModel):
    order_id: str
    status: str
    version: int
    lines: list[Line]


def serve_minimal_app(port: int) -> None:
    """The server side of the HTTP measurement (run in a child process)."""
    app = FastAPI()
    lines = [Line(sku=f"SKU-{n}", quantity=4, unit_price="12.50") for n in range(3)]

    @app.post("/v1/orders/{order_id}/accept")
    async def accept(order_id: str, choice: CustomerChoice) -> OrderView:
        return OrderView(order_id=order_id, status="approved", version=2, lines=lines)

    uvicorn.run(app, host="127.0.0.1", port=port, http="httptools", log_config=None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def http_request() -> dict[str, float]:
    """Server CPU ms per request, over keep-alive connections, CONCURRENCY at a time."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1/orders/ord-1/accept"
    body = {"customer_id": "cus-1"}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as http:
            deadline = time.monotonic() + 30
            while True:  # until it answers (bounded)
                try:
                    async with http.post(url, json=body) as response:
                        response.raise_for_status()
                        break
                except aiohttp.ClientConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)

            async def worker(first: int) -> None:
                for _ in range(first, REQUESTS, CONCURRENCY):
                    async with http.post(url, json=body) as response:
                        response.raise_for_status()
                        await response.read()

            await asyncio.gather(*(worker(first) for first in range(CONCURRENCY)))  # warm
            before = proc_stat(server.pid)
            await asyncio.gather(*(worker(first) for first in range(CONCURRENCY)))
            after = proc_stat(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=10)
    if before is None or after is None:
        raise RuntimeError("the minimal app's process vanished during the measurement")
    return {"server_ms": (after[2] - before[2]) * 1000 / REQUESTS}


# --- Kafka: produce and consume in batches ---------------------------------------------------


async def kafka_message() -> dict[str, float]:
    """CPU ms per 1 KB record produced and consumed once: the broker's and the clients'."""
    topic = f"bench.floor.{uuid.uuid4().hex[:8]}"
    value = b"x" * 1024
    producer, consumer = producer_and_group_consumer(topic, max_poll_records=500)
    await producer.start()
    await consumer.start()
    received = 0

    async def produce() -> None:
        for first in range(0, MESSAGES, 500):
            sent = [
                await producer.send(topic, value, key=str(number % 64).encode())
                for number in range(first, min(first + 500, MESSAGES))
            ]
            await asyncio.gather(*sent)

    async def consume() -> None:
        nonlocal received
        deadline = time.monotonic() + 120
        while received < MESSAGES and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            if batches:
                received += sum(len(records) for records in batches.values())
                await consumer.commit()

    try:
        before, own_before = infra_cpu_seconds(), own_cpu_seconds()
        await asyncio.gather(produce(), consume())
        after, own_after = infra_cpu_seconds(), own_cpu_seconds()
    finally:
        await consumer.stop()
        await producer.stop()
    if received < MESSAGES:
        raise RuntimeError(f"received {received} of {MESSAGES} records in time")
    per = 1000 / MESSAGES
    figures = {
        "broker_ms": (after["kafka"] - before["kafka"]) * per,
        "clients_ms": (own_after - own_before) * per,
    }
    figures["total_ms"] = sum(figures.values())
    return figures


async def one_round() -> dict[str, float]:
    alone = await database_write(1, 1)
    concurrent = await database_write(CONCURRENCY, 1)
    bulk = await database_write(1, BULK)
    write = min(alone, concurrent, bulk, key=lambda figures: figures["total_ms"])
    request = await http_request()
    message = await kafka_message()
    floor = (
        WRITES_PER_ORDER * write["total_ms"]
        + REQUESTS_PER_ORDER * request["server_ms"]
        + MESSAGES_PER_ORDER * message["total_ms"]
    )
    return {
        "write_alone_ms": alone["total_ms"],
        "write_concurrent_ms": concurrent["total_ms"],
        "write_bulk_ms": bulk["total_ms"],
        "write_ms": write["total_ms"],
        "write_ferretdb_ms": write["ferretdb_ms"],
        "write_postgres_ms": write["postgres_ms"],
        "write_client_ms": write["client_ms"],
        "request_server_ms": request["server_ms"],
        "message_ms": message["total_ms"],
        "message_broker_ms": message["broker_ms"],
        "message_clients_ms": message["clients_ms"],
        "floor_cpu_ms_per_order": floor,
        "floor_orders_per_s": CPUS * 1000 / floor,
    }


async def main() -> None:
    await kafka_message()  # unmeasured: a broker just started spends more per message
    rounds = [await one_round() for _ in range(ROUNDS)]
    spread = {key: median_min_max([r[key] for r in rounds]) for key in rounds[0]}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    result = {
        "at": datetime.now(UTC).isoformat(),
        "cpus": CPUS,
        "per_order": {
            "writes": WRITES_PER_ORDER,
            "messages": MESSAGES_PER_ORDER,
            "requests": REQUESTS_PER_ORDER,
        },
        "rounds": rounds,
        "spread": spread,
    }
    (out / "floor.json").write_text(json.dumps(result, indent=2))

    def figure(key: str, fmt: str = ".2f") -> str:
        s = spread[key]
        return f"{s['median']:{fmt}} ({s['min']:{fmt}}-{s['max']:{fmt}})"

    print(f"floor: the parts of one order, bare, {ROUNDS} rounds, medians (min-max)")
    print(
        f"  database write        {figure('write_ms')} CPU ms: FerretDB "
        f"{figure('write_ferretdb_ms')}, PostgreSQL {figure('write_postgres_ms')}, "
        f"client {figure('write_client_ms')} (the cheapest of: alone "
        f"{figure('write_alone_ms')}, {CONCURRENCY} at a time {figure('write_concurrent_ms')}, "
        f"{BULK} to a bulk write {figure('write_bulk_ms')})"
    )
    print(f"  HTTP request (server) {figure('request_server_ms')} CPU ms")
    print(
        f"  Kafka message         {figure('message_ms')} CPU ms: broker "
        f"{figure('message_broker_ms')}, clients {figure('message_clients_ms')}"
    )
    floor = spread["floor_cpu_ms_per_order"]["median"]
    print(
        f"  per order: {WRITES_PER_ORDER} writes + {REQUESTS_PER_ORDER} requests + "
        f"{MESSAGES_PER_ORDER} messages = {figure('floor_cpu_ms_per_order', '.1f')} CPU ms "
        f"(budget {CPU_BUDGET_MS:.0f}); at most {figure('floor_orders_per_s', '.0f')} orders/s "
        f"on {CPUS} cores with no code of ours"
    )
    print(
        f"floor_cpu_ms_per_order={floor:.1f} "
        f"floor_orders_per_s={spread['floor_orders_per_s']['median']:.0f} rounds={ROUNDS}"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve_minimal_app(int(sys.argv[2]))
    else:
        uvloop.run(main())

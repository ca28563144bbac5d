"""The orders service as Kubernetes runs it: real processes, SIGTERM on rollout, SIGKILL on a lost
node, two replicas in one consumer group. Nothing placed is lost or stored twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from juniper_shared.contracts.registry import ORDERS_EVENTS, ORDERS_PLACED, encode
from juniper_testkit import bearer, kafka_options, placed_order, read_topic, wait_until
from orders.adapters.mongo import ORDERS
from pymongo import AsyncMongoClient

from .support import ServiceProcess

pytestmark = pytest.mark.integration

SELLER = "seller-lifecycle"
GRACE_SECONDS = 30.0
"""Below the Deployment's terminationGracePeriodSeconds (45)."""


@contextlib.asynccontextmanager
async def running(*processes: ServiceProcess) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for process in processes:
            await process.stop_quietly()


async def open_to_new_buyers(service: ServiceProcess) -> None:
    """The seller turns "Buyer Access Requires Approval" off, so every order arrives pending."""
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:
        response = await client.put(
            "/v1/seller/settings",
            json={"buyer_access_requires_approval": False},
            headers=bearer(SELLER),
        )
    assert response.status_code == 200, response.text


async def place_stream(
    bootstrap: str, topic: str, order_ids: list[str], *, per_second: int
) -> None:
    """Checkout placing orders at a steady rate, one message per order, keyed by order id."""
    producer = AIOKafkaProducer(
        **kafka_options(bootstrap, "checkout"), enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        chunk = max(1, per_second // 20)
        for start in range(0, len(order_ids), chunk):
            for order_id in order_ids[start : start + chunk]:
                event = placed_order(order_id=order_id, seller_id=SELLER)
                await producer.send(topic, encode(event), key=order_id.encode())
            await producer.flush()
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()


async def stored_orders(mongo: AsyncMongoClient[dict[str, Any]], database: str) -> list[str]:
    return [doc["_id"] async for doc in mongo[database][ORDERS].find({}, {"_id": 1})]


async def received_events(bootstrap: str, topic: str, order_ids: set[str]) -> dict[str, set[str]]:
    """order id -> distinct event ids of `order.received` read from `topic`."""
    found: dict[str, set[str]] = {}

    def all_there(records: list[Any]) -> bool:
        for record in records[len_seen[0] :]:
            envelope = json.loads(record.value)
            if envelope["type"] == "order.received":
                found.setdefault(envelope["data"]["order"]["order_id"], set()).add(
                    envelope["event_id"]
                )
        len_seen[0] = len(records)
        return set(found) >= order_ids

    len_seen = [0]
    await read_topic(bootstrap, topic, until=all_there, timeout=60)
    return found


def order_ids(unique: str, count: int) -> list[str]:
    return [f"ord-{unique}-{n:04d}" for n in range(count)]


def assert_drained(code: int, service: ServiceProcess) -> None:
    """Exited 0 after draining: the lifespan's last line is logged, then the process ends."""
    assert code == 0, f"exit {code}\n{service.log_tail()}"
    assert '"message": "orders stopped"' in service.log_text(), service.log_tail()


async def test_sigterm_mid_stream_loses_nothing_and_stores_each_order_once(
    infra: Any, database_name: str, unique: str, mongo_client: Any, tmp_path: Path
) -> None:
    prefix = f"t{unique}."
    await infra.provision(prefix)
    expected = order_ids(unique, 300)
    first = ServiceProcess.orders(
        tmp_path,
        "orders-1",
        kafka=infra.kafka_bootstrap,
        mongodb_url=infra.mongodb_url,
        database=database_name,
        prefix=prefix,
    )
    second = ServiceProcess.orders(
        tmp_path,
        "orders-2",
        kafka=infra.kafka_bootstrap,
        mongodb_url=infra.mongodb_url,
        database=database_name,
        prefix=prefix,
    )
    async with running(first, second):
        await first.start()
        await open_to_new_buyers(first)
        stream = asyncio.create_task(
            place_stream(
                infra.kafka_bootstrap, prefix + ORDERS_PLACED.name, expected, per_second=100
            )
        )
        # Rollout while orders keep arriving: SIGTERM once the consumer is well into the stream.
        await wait_until(
            lambda: _at_least(stored_orders(mongo_client, database_name), 60),
            equals=True,
            timeout=60,
        )
        code = await first.terminate(within=GRACE_SECONDS)
        stored_at_stop = len(await stored_orders(mongo_client, database_name))
        await stream
        assert stored_at_stop < len(expected), "the stop came after the stream: nothing to prove"
        assert_drained(code, first)

        # The new pod takes over from the committed offsets.
        await second.start()
        await wait_until(
            lambda: _count(stored_orders(mongo_client, database_name)),
            equals=len(expected),
            timeout=90,
        )
        stored = await stored_orders(mongo_client, database_name)
        assert sorted(stored) == sorted(expected)
        received = await received_events(
            infra.kafka_bootstrap, prefix + ORDERS_EVENTS.name, set(expected)
        )
        assert set(received) == set(expected)
        # Redelivered orders are republished with the same event id: one distinct event each.
        assert all(len(ids) == 1 for ids in received.values())
        assert_drained(await second.terminate(within=GRACE_SECONDS), second)


async def test_two_replicas_share_partitions_and_a_killed_one_loses_nothing(
    infra: Any, database_name: str, unique: str, mongo_client: Any, tmp_path: Path
) -> None:
    prefix = f"t{unique}."
    placed_topic = prefix + ORDERS_PLACED.name
    await infra.provision(prefix, partitions=4)
    expected = order_ids(unique, 600)
    replicas = [
        ServiceProcess.orders(
            tmp_path,
            f"orders-{n}",
            kafka=infra.kafka_bootstrap,
            mongodb_url=infra.mongodb_url,
            database=database_name,
            prefix=prefix,
        )
        for n in (1, 2)
    ]
    doomed, survivor = replicas
    async with running(*replicas):
        await asyncio.gather(*(replica.start() for replica in replicas))
        await open_to_new_buyers(survivor)
        stream = asyncio.create_task(
            place_stream(infra.kafka_bootstrap, placed_topic, expected, per_second=120)
        )
        # Both members of the group get partitions, so both consume part of the stream.
        await wait_until(
            lambda: _both_consumed(replicas, ORDERS_PLACED.name), equals=True, timeout=60
        )
        await doomed.kill()
        assert not stream.done(), "the stream ended before the kill: nothing to prove"
        await stream

        # The group notices the lost member (session timeout) and the survivor takes over
        # its partitions from their last committed offsets.
        await wait_until(
            lambda: _count(stored_orders(mongo_client, database_name)),
            equals=len(expected),
            timeout=120,
        )
        assert sorted(await stored_orders(mongo_client, database_name)) == sorted(expected)
        received = await received_events(
            infra.kafka_bootstrap, prefix + ORDERS_EVENTS.name, set(expected)
        )
        assert set(received) == set(expected)
        assert all(len(ids) == 1 for ids in received.values())
        assert_drained(await survivor.terminate(within=GRACE_SECONDS), survivor)


async def _at_least(stored: Any, count: int) -> bool:
    return len(await stored) >= count


async def _count(stored: Any) -> int:
    return len(await stored)


async def _both_consumed(replicas: list[ServiceProcess], topic: str) -> bool:
    counts = await asyncio.gather(*(replica.consumed(topic) for replica in replicas))
    return all(count > 0 for count in counts)

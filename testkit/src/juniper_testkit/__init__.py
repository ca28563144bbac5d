"""Helpers for the tests of every service: bounded waits on real systems, contract events."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from juniper_shared.contracts.events import OrderPlaced, OrderPlacedData
from juniper_shared.contracts.registry import TOPICS
from juniper_shared.settings import KafkaSettings

DEV_PASSWORD_SUFFIX = "-dev-secret"
"""The local stack's Kafka passwords are `<principal>-dev-secret` (the contract)."""


def kafka_credentials(principal: str) -> dict[str, Any]:
    """KafkaSettings fields that make a client `principal` on the broker the tests use: its local
    password when KAFKA_SECURITY_PROTOCOL says SASL (make test), nothing on a PLAINTEXT broker."""
    protocol = os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    if protocol == "PLAINTEXT":
        return {}
    return {
        "kafka_security_protocol": protocol,
        "kafka_sasl_mechanism": os.environ.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        "kafka_sasl_username": principal,
        "kafka_sasl_password": principal + DEV_PASSWORD_SUFFIX,
    }


def kafka_env(principal: str) -> dict[str, str]:
    """The same as environment variables, for a service started as a process."""
    return {name.upper(): str(value) for name, value in kafka_credentials(principal).items()}


def kafka_settings(bootstrap: str, principal: str) -> KafkaSettings:
    """The connection to `bootstrap` as `principal`."""
    return KafkaSettings(kafka_bootstrap_servers=bootstrap, **kafka_credentials(principal))


def kafka_options(bootstrap: str, principal: str) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client connecting to `bootstrap` as `principal`."""
    return kafka_settings(bootstrap, principal).kafka_client_options()


def writer_of(topic: str) -> str:
    """The principal that may write `topic` (a contract topic under any prefix); `ops` for the
    rest (dead-letter topics, a test's own topics), which writes every topic."""
    for known in TOPICS:
        if topic.endswith(known.name):
            return known.writer
    return "ops"


async def wait_until(
    probe: Callable[[], Awaitable[Any]],
    *,
    equals: Any,
    timeout: float = 20.0,
    interval: float = 0.1,
) -> Any:
    """Poll `probe` until it returns `equals`; fail with the last value after `timeout` seconds."""
    last: Any = None
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last == equals:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"waited {timeout}s for {equals!r}; last value was {last!r}")


ADDRESS = {
    "name": "Maple & Co",
    "line1": "12 Harbour St",
    "city": "Portland",
    "region": "OR",
    "postal_code": "97201",
    "country": "US",
}
"""The buyer's shipping and billing address in the tests' orders."""


def placed_order_data(**overrides: Any) -> dict[str, Any]:
    address = dict(ADDRESS)  # a test may change its order's address
    data: dict[str, Any] = {
        "order_id": f"ord-{uuid.uuid4().hex[:12]}",
        "seller_id": "seller-1",
        "seller_name": "Juniper Pottery",
        "placed_at": datetime.now(UTC).isoformat(),
        "currency": "USD",
        "buyer": {
            "id": "buyer-1",
            "name": "Ada Buyer",
            "email": "ada@example.com",
            "company": "Maple & Co",
        },
        "items": [
            {"sku": "MUG-1", "name": "Stoneware mug", "unit_price": "12.50", "quantity": 4},
            {"sku": "TEA-2", "name": "Green tea tin", "unit_price": "8.00", "quantity": 2},
        ],
        "shipping_address": address,
        "billing_address": address,
        "payment_method": {
            "type": "credit_card",
            "card_token": "tok_visa",
            "brand": "visa",
            "last4": "4242",
        },
    }
    data.update(overrides)
    return data


def placed_order(**overrides: Any) -> OrderPlaced:
    data = OrderPlacedData.model_validate(placed_order_data(**overrides))
    return OrderPlaced(producer="checkout", seller_id=data.seller_id, data=data)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: Any, *, port: int | None = None) -> AsyncIterator[str]:
    """Run an ASGI app on real HTTP (uvicorn on 127.0.0.1) with its lifespan; yields its base URL."""
    import uvicorn

    chosen = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=chosen, log_config=None, access_log=False, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("server stopped during start-up")
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{chosen}"
    finally:
        server.should_exit = True
        await task


def bearer(seller_id: str, secret: str = "dev-only-secret") -> dict[str, str]:
    """Authorization header for `seller_id`."""
    from juniper_shared.auth import issue_token

    return {"Authorization": f"Bearer {issue_token(seller_id, secret)}"}


async def publish_raw(
    bootstrap: str,
    topic: str,
    messages: list[tuple[bytes | None, bytes]],
    *,
    principal: str | None = None,
) -> None:
    """Produce (key, value) pairs to `topic` and wait until Kafka has them; as the topic's
    writer (e.g. `checkout` for orders.placed) unless `principal` says otherwise."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        **kafka_options(bootstrap, principal or writer_of(topic)), enable_idempotence=True
    )
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Any]], bool],
    timeout: float = 20.0,
    principal: str = "ops",
) -> list[Any]:
    """Read `topic` from the beginning until `until(records)` holds; fails after `timeout` s.
    As `ops` by default, which reads every topic (no consumer group)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, **kafka_options(bootstrap, principal), auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while not until(records):
                batch = await consumer.getmany(timeout_ms=200)
                for partition_records in batch.values():
                    records.extend(partition_records)
    except TimeoutError:
        raise AssertionError(
            f"{topic}: condition not met within {timeout}s; read {len(records)} records"
        ) from None
    finally:
        await consumer.stop()
    return records

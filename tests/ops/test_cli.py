"""The operator CLI against the real broker and database: what an SRE sees and what it changes."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from juniper_shared.contracts.registry import ORDERS_PLACED, encode
from juniper_shared.outbox import outbox_entry
from juniper_shared.producer import OutgoingMessage
from juniper_testkit import (
    kafka_credentials,
    kafka_env,
    kafka_options,
    placed_order,
    publish_raw,
    read_topic,
    serving,
    wait_until,
)
from orders.bootstrap import build_app
from orders.settings import OrdersSettings

from .support import JWT_SECRET, REPO

pytestmark = pytest.mark.integration


async def ops(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "juniper_ops",
        *args,
        env={**os.environ, **env},
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def rows(output: str) -> list[list[str]]:
    """The table lines of a listing (after its title and header line)."""
    return [line.split() for line in output.splitlines()[2:] if line.strip()]


async def test_dead_letters_are_listed_then_replayed_once_after_a_fix(
    infra: Any, database_name: str, unique: str
) -> None:
    prefix = f"t{unique}."
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "MONGODB_URL": infra.mongodb_url,
        "KAFKA_TOPIC_PREFIX": prefix,
        "AUTH_JWT_SECRET": JWT_SECRET,
        **kafka_env("ops"),
    }
    await infra.provision(prefix)
    placed, dlq = prefix + ORDERS_PLACED.name, prefix + ORDERS_PLACED.dlq
    settings = OrdersSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        mongodb_url=infra.mongodb_url,
        mongodb_database=database_name,
        kafka_topic_prefix=prefix,
        auth_jwt_secret=JWT_SECRET,
        outbox_poll_seconds=0.5,
        **kafka_credentials("orders"),
    )
    # An order an older, buggy release dead-lettered (the fix is deployed now), as the
    # dead-letter helper stores it: original value and key, the reason in headers.
    rescued = placed_order(seller_id="seller-ops")
    rescued_id = rescued.data.order_id
    await _dead_letter(
        infra.kafka_bootstrap, dlq, placed, key=rescued_id, value=encode(rescued), error="boom"
    )
    async with serving(build_app(settings)) as base_url:
        # Real poison: the running service sends it to the DLQ itself.
        await publish_raw(infra.kafka_bootstrap, placed, [(b"garbage-key", b"{not json")])
        await read_topic(infra.kafka_bootstrap, dlq, until=lambda records: len(records) == 2)

        code, out, _ = await ops("dlq", "list", "orders.placed", env=env)
        assert code == 0
        assert out.splitlines()[0].startswith(f"{dlq}: 2 dead letters")
        listed = rows(out)
        assert [row[2] for row in listed] == [rescued_id, "garbage-key"]
        assert listed[0][3:6] == [f"{placed}/0@41", "no", "boom"]
        # The service may have created the topic with several partitions: any one will do.
        assert listed[1][3].startswith(f"{placed}/")
        assert listed[1][4] == "no"
        assert "not JSON" in out

        code, out, _ = await ops("dlq", "replay", "orders.placed", "--dry-run", env=env)
        assert code == 0
        assert f"dry run: would replay 2 dead letters from {dlq} to {placed}" in out

        code, out, _ = await ops("dlq", "replay", "orders.placed.dlq", env=env)
        assert code == 0
        assert f"replayed 2 dead letters from {dlq} to {placed}" in out

        # The seller now sees the rescued order; the token comes from the CLI too.
        code, token, _ = await ops("token", "seller-ops", env=env)
        assert code == 0
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:

            async def order_status() -> int:
                response = await client.get(
                    f"/v1/orders/{rescued_id}",
                    headers={"Authorization": f"Bearer {token.strip()}"},
                )
                return response.status_code

            await wait_until(order_status, equals=200, timeout=30)

        # The garbage is still garbage: back in the DLQ, as a new dead letter.
        await read_topic(infra.kafka_bootstrap, dlq, until=lambda records: len(records) == 3)
        code, out, _ = await ops("dlq", "list", "orders.placed", env=env)
        assert [row[4] for row in rows(out)] == ["yes", "yes", "no"]
        # A second replay sends only what arrived since the first.
        code, out, _ = await ops("dlq", "replay", "orders.placed", "--dry-run", env=env)
        assert f"would replay 1 dead letters from {dlq}" in out


async def test_unknown_topic_is_refused_with_the_known_ones(infra: Any) -> None:
    code, _, err = await ops(
        "dlq", "list", "orders.placd", env={"KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap}
    )
    assert code == 2
    assert "unknown topic 'orders.placd'" in err
    assert "orders.placed" in err


async def test_outbox_shows_the_backlog_and_its_oldest_event(
    infra: Any, database_name: str, mongo_client: Any
) -> None:
    env = {"MONGODB_URL": infra.mongodb_url, "MONGODB_DATABASE": database_name}
    code, out, _ = await ops("outbox", "orders", env=env)
    assert code == 0
    assert rows(out) == [["orders", "0", "0", "-", "-"]]

    # Two orders whose events were stored but never published (Kafka was down, say).
    stale, fresh = placed_order(), placed_order()
    stale = stale.model_copy(update={"occurred_at": datetime.now(UTC) - timedelta(minutes=10)})
    await mongo_client[database_name]["orders"].insert_many(
        [
            {
                "_id": "ord-stale",
                "outbox": [outbox_entry(OutgoingMessage.of(stale))] * 2,
                "outbox_pending": True,
            },
            {
                "_id": "ord-fresh",
                "outbox": [outbox_entry(OutgoingMessage.of(fresh))],
                "outbox_pending": True,
            },
            {"_id": "ord-published", "outbox": [], "outbox_pending": False},
        ]
    )
    code, out, _ = await ops("outbox", "orders", env=env)
    assert code == 0
    [[collection, documents, events, age, oldest]] = rows(out)
    assert (collection, documents, events, oldest) == ("orders", "2", "3", "ord-stale")
    assert 600 <= float(age) < 3600

    code, out, _ = await ops("outbox", "notifications", env=env)
    assert code == 0
    assert "notifications publishes no events" in out


async def test_token_is_accepted_by_a_service(infra: Any) -> None:
    code, token, _ = await ops("token", "seller-7", env={"AUTH_JWT_SECRET": JWT_SECRET})
    assert code == 0
    from juniper_shared.auth import decode_seller_id

    assert decode_seller_id(token.strip(), JWT_SECRET) == "seller-7"


async def test_token_refuses_what_the_services_would_refuse(infra: Any) -> None:
    env = {"AUTH_JWT_SECRET": JWT_SECRET}
    code, out, err = await ops("token", "seller-7", "--ttl", "86401", env=env)
    assert (code, out) == (2, "")
    assert "AUTH_MAX_TOKEN_TTL_SECONDS" in err
    code, out, err = await ops("token", "Seller_7", env=env)
    assert (code, out) == (2, "")
    assert "not a seller id" in err


async def _dead_letter(
    bootstrap: str, dlq: str, source: str, *, key: str, value: bytes, error: str
) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**kafka_options(bootstrap, "ops"))
    await producer.start()
    try:
        headers = [
            ("type", b"order.placed"),
            ("dlq-error", error.encode()),
            ("dlq-source-topic", source.encode()),
            ("dlq-source-partition", b"0"),
            ("dlq-source-offset", b"41"),
        ]
        await producer.send_and_wait(dlq, value, key=key.encode(), headers=headers)
    finally:
        await producer.stop()

"""Gapless invoice numbers on the real database: under concurrent confirms and across a crash."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from invoicing.adapters.documents import NUMBER_KEY, number_key
from invoicing.adapters.mongo import create_indexes
from invoicing.bootstrap import build_app
from juniper_shared.metrics import DB_COMMANDS
from juniper_testkit import free_port, kafka_env, serving, wait_until
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from .support import Invoicing, accepted, invoicing_settings, snapshot

pytestmark = pytest.mark.integration


async def drafts(service: Invoicing, unique: str, count: int) -> list[str]:
    """`count` approved orders of seller-1, each previewed; returns their invoice ids."""
    order_ids = [f"ord-{unique}-{index}" for index in range(count)]
    await service.publish_orders([accepted(snapshot(order_id)) for order_id in order_ids])
    return [(await service.until_previewable(order_id))["invoice_id"] for order_id in order_ids]


async def test_twenty_concurrent_confirms_from_two_instances_number_one_to_twenty(
    service: Invoicing, infra: Any, database_name: str, unique: str
) -> None:
    invoice_ids = await drafts(service, unique, 20)
    # A second instance on the same database: confirms race for the numbers across processes.
    port = free_port()
    other = build_app(invoicing_settings(infra, database_name, unique, port))
    async with (
        serving(other, port=port) as other_url,
        httpx.AsyncClient(base_url=other_url, timeout=60) as other_http,
    ):
        second = Invoicing(other_url, service.prefix, service.bootstrap, other_http)
        instances = [service, second]
        answers = await asyncio.gather(
            *(
                instances[index % 2].confirm(invoice_id)
                for index, invoice_id in enumerate(invoice_ids)
            )
        )
    assert [answer.status_code for answer in answers] == [200] * 20
    numbers = sorted(answer.json()["number"] for answer in answers)
    assert numbers == [f"INV-{n:06d}" for n in range(1, 21)]

    events = await service.invoice_events(until=lambda found: len(found) >= 20)
    assert sorted(event["data"]["number"] for event in events) == numbers


def invoice_round_trips() -> float:
    """Commands sent to the invoices collection by this test process (its service included)."""
    return sum(
        DB_COMMANDS.labels(command, "invoices")._value.get()
        for command in ("find", "insert", "update")
    )


async def test_each_confirm_is_one_write_and_the_numbers_stay_gapless(
    service: Invoicing, unique: str
) -> None:
    first, *others = await drafts(service, unique, 5)
    assert (await service.confirm(first)).json()["number"] == "INV-000001"  # reads the highest
    before = invoice_round_trips()
    numbers = [(await service.confirm(invoice_id)).json()["number"] for invoice_id in others]
    assert numbers == [f"INV-{n:06d}" for n in range(2, 6)]
    # The draft with its number and event, in one guarded write; nothing else is read.
    assert invoice_round_trips() - before == len(others)


CRASHING = Path(__file__).with_name("crashing.py")


def start_process(env: dict[str, str], *, crash_after: str | None) -> subprocess.Popen[bytes]:
    """The service as `python -m invoicing` runs it or, with `crash_after`, one that dies right
    after that step of a confirm."""
    command = ["-m", "invoicing"] if crash_after is None else [str(CRASHING), crash_after]
    return subprocess.Popen(
        [sys.executable, *command],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@asynccontextmanager
async def running(
    env: dict[str, str], base_url: str, *, crash_after: str | None = None
) -> AsyncIterator[tuple[subprocess.Popen[bytes], httpx.AsyncClient]]:
    process = start_process(env, crash_after=crash_after)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:

            async def healthy() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"service exited with {process.returncode}")
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(healthy, equals=True, timeout=60, interval=0.2)
            yield process, http
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.mark.parametrize("step", ["number_chosen", "invoice_numbered"])
async def test_a_service_killed_mid_confirm_leaves_no_gap(
    infra: Any, database_name: str, unique: str, step: str
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "MONGODB_URL": infra.mongodb_url,
        "MONGODB_DATABASE": database_name,
        "KAFKA_TOPIC_PREFIX": f"t{unique}.",
        "AUTH_JWT_SECRET": "dev-only-secret",
        "HTTP_PORT": str(port),
        "OUTBOX_POLL_SECONDS": "0.5",
        "MONGODB_MAX_POOL_SIZE": "10",
        "LOG_LEVEL": "WARNING",
        **kafka_env("invoicing"),
    }
    await infra.provision(f"t{unique}.")
    first_order, second_order = f"ord-{unique}-1", f"ord-{unique}-2"
    async with running(env, base_url, crash_after=step) as (process, http):
        service = Invoicing(base_url, f"t{unique}.", infra.kafka_bootstrap, http)
        await service.publish_orders(
            [accepted(snapshot(first_order)), accepted(snapshot(second_order))]
        )
        first = (await service.until_previewable(first_order))["invoice_id"]
        second = (await service.until_previewable(second_order))["invoice_id"]
        with pytest.raises(httpx.TransportError):
            await service.confirm(first)  # the process dies before or right after its write
        assert await asyncio.to_thread(process.wait, 30) == 137

    async with running(env, base_url) as (_, http):
        service = Invoicing(base_url, f"t{unique}.", infra.kafka_bootstrap, http)
        # The write landed whole (number and event) or not at all: nothing to settle.
        recovered = (await service.invoice(first)).json()
        expected = ("issued", "INV-000001") if step == "invoice_numbered" else ("draft", None)
        assert (recovered["status"], recovered["number"]) == expected
        again = (await service.confirm(first)).json()
        assert (again["number"], again["status"]) == ("INV-000001", "issued")
        assert (await service.confirm(second)).json()["number"] == "INV-000002"

        events = await service.invoice_events(until=lambda found: len(found) >= 2)
        assert sorted((e["data"]["invoice_id"], e["data"]["number"]) for e in events) == [
            (first, "INV-000001"),
            (second, "INV-000002"),
        ]


async def test_invoices_numbered_before_the_unique_index_keep_their_numbers_unique(
    infra: Any, database_name: str
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
    invoices = client[database_name]["invoices"]
    try:
        await invoices.insert_many(
            [
                {"_id": "inv-legacy", "seller_id": "seller-1", "sequence": 7, "version": 2},
                {"_id": "inv-draft", "seller_id": "seller-1", "sequence": None, "version": 1},
            ]
        )
        await create_indexes(client[database_name])
        await create_indexes(client[database_name])  # every start: keyed once

        # Number 7 stays the legacy invoice's: giving it to the draft is refused.
        with pytest.raises(DuplicateKeyError):
            await invoices.update_one(
                {"_id": "inv-draft"},
                {"$set": {"sequence": 7, NUMBER_KEY: number_key("seller-1", 7)}},
            )
    finally:
        await client.close()

"""The payments process is killed (SIGKILL) while a slow charge is in flight, then restarted:
the buyer's card is charged exactly once. Real processes, real Kafka, FerretDB and sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from juniper_shared.contracts.registry import encode
from juniper_testkit import (
    bearer,
    free_port,
    kafka_env,
    placed_order,
    publish_raw,
    wait_until,
)
from pymongo import AsyncMongoClient

from ..builders import invoice_issued

pytestmark = pytest.mark.integration

SELLER = "seller-crash"


class Process:
    """A service started as `python -m <module>`; its output goes to a log file."""

    def __init__(self, module: str, env: dict[str, str], log: Path) -> None:
        self.module = module
        self.env = env
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module, env=self.env, stdout=out, stderr=out
            )

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        async with asyncio.timeout(10):
            await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            async with asyncio.timeout(30):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def answers(url: str, *, process: Process) -> None:
    """Wait (bounded) until `url` answers 200; fail at once if the process died."""

    async def status() -> int:
        assert process.proc is not None
        if process.proc.returncode is not None:
            raise AssertionError(f"{process.module} exited: {process.log.read_text()[-2000:]}")
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(url)).status_code
        except httpx.HTTPError:
            return 0

    await wait_until(status, equals=200, timeout=60, interval=0.2)


@pytest.fixture
async def processes(
    infra: Any, database_name: str, unique: str, tmp_path: Path
) -> AsyncIterator[tuple[Process, Process, dict[str, str]]]:
    sandbox_port, http_port = free_port(), free_port()
    base = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST")}
    sandbox = Process(
        "card_sandbox", {**base, "SANDBOX_PORT": str(sandbox_port)}, tmp_path / "sandbox.log"
    )
    env = {
        **base,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "MONGODB_URL": infra.mongodb_url,
        "MONGODB_DATABASE": database_name,
        "KAFKA_TOPIC_PREFIX": f"t{unique}.",
        "AUTH_JWT_SECRET": "dev-only-secret",
        "HTTP_PORT": str(http_port),
        "CARD_PROCESSOR_URL": f"http://127.0.0.1:{sandbox_port}",
        "OUTBOX_POLL_SECONDS": "0.5",
        "LOG_LEVEL": "WARNING",
        **kafka_env("payments"),
    }
    await infra.provision(f"t{unique}.")
    payments = Process("payments", env, tmp_path / "payments.log")
    try:
        yield (
            sandbox,
            payments,
            {
                "sandbox": f"http://127.0.0.1:{sandbox_port}",
                "payments": f"http://127.0.0.1:{http_port}",
                "prefix": f"t{unique}.",
            },
        )
    finally:
        with contextlib.suppress(Exception):
            await payments.stop()
        with contextlib.suppress(Exception):
            await sandbox.stop()


async def test_a_charge_in_flight_when_the_process_dies_is_made_exactly_once(
    infra: Any,
    processes: tuple[Process, Process, dict[str, str]],
    mongo_client: AsyncMongoClient[dict[str, Any]],
) -> None:
    sandbox, payments, urls = processes
    await sandbox.start()
    await answers(urls["sandbox"] + "/healthz", process=sandbox)
    await payments.start()
    await answers(urls["payments"] + "/readyz", process=payments)

    method = {"type": "credit_card", "card_token": "tok_slow", "brand": "visa", "last4": "4242"}
    order = placed_order(seller_id=SELLER, payment_method=method)
    invoice = invoice_issued(order, invoice_id=f"inv-crash-{uuid.uuid4().hex[:8]}")
    invoice_id = invoice.data.invoice_id
    for topic, event in (("orders.placed", order), ("invoices.events", invoice)):
        await publish_raw(
            infra.kafka_bootstrap,
            urls["prefix"] + topic,
            [(event.key().encode(), encode(event))],
        )

    async with httpx.AsyncClient(base_url=urls["sandbox"], timeout=10) as processor:

        async def charges() -> list[dict[str, Any]]:
            response = await processor.get("/v1/charges", params={"reference": invoice_id})
            listed: list[dict[str, Any]] = response.json()
            return listed

        async def statuses() -> list[str]:
            return [charge["status"] for charge in await charges()]

        # The processor has the charge and is still working on it (tok_slow takes 5 s).
        await wait_until(statuses, equals=["processing"], timeout=60)
        await payments.kill()

        await payments.start()
        await answers(urls["payments"] + "/readyz", process=payments)
        async with httpx.AsyncClient(base_url=urls["payments"], timeout=10) as http:

            async def payment_status() -> str | None:
                response = await http.get(
                    "/v1/payments", params={"invoice_id": invoice_id}, headers=bearer(SELLER)
                )
                return response.json()["status"] if response.status_code == 200 else None

            await wait_until(payment_status, equals="succeeded", timeout=60)
            payment = (
                await http.get(
                    "/v1/payments", params={"invoice_id": invoice_id}, headers=bearer(SELLER)
                )
            ).json()

        made = await charges()

    assert [charge["status"] for charge in made] == ["succeeded"]
    assert [(a["attempt"], a["status"], a["processor_ref"]) for a in payment["attempts"]] == [
        (1, "succeeded", made[0]["charge_id"])
    ]

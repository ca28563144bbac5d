"""The payments service on real Kafka and FerretDB, charging a real sandbox processor over HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from card_sandbox import Sandbox, create_sandbox_app
from juniper_shared.contracts.events import Envelope, InvoiceIssued, OrderPlaced
from juniper_shared.contracts.registry import encode
from juniper_testkit import (
    bearer,
    kafka_credentials,
    placed_order,
    publish_raw,
    read_topic,
    serving,
    wait_until,
)
from payments.bootstrap import build_app
from payments.settings import PaymentsSettings
from pymongo import AsyncMongoClient

from ..builders import invoice_issued


def make_settings(
    infra: Any, database_name: str, prefix: str, processor_url: str, **overrides: Any
) -> PaymentsSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": infra.kafka_bootstrap,
        "mongodb_url": infra.mongodb_url,
        "mongodb_database": database_name,
        "kafka_topic_prefix": prefix,
        "auth_jwt_secret": "dev-only-secret",
        **kafka_credentials("payments"),
        "outbox_poll_seconds": 0.5,
        "card_processor_url": processor_url,
        # Small but real: enough calls for tok_transient's two 503s, quick to exhaust.
        "payment_retry_attempts": 4,
        "payment_retry_max_seconds": 10,
        "payment_retry_backoff_seconds": 0.05,
        "payment_retry_backoff_max_seconds": 0.5,
        "payment_card_wait_seconds": 4.0,  # pauses of 0.25, 0.5, 1 and 2 s
    }
    values.update(overrides)
    return PaymentsSettings(**values)


@dataclass
class PaymentsUnderTest:
    http: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    settings: PaymentsSettings

    def topic(self, name: str) -> str:
        return self.settings.kafka_topic_prefix + name

    async def publish(self, topic: str, *events: Envelope) -> None:
        await publish_raw(
            self.settings.kafka_bootstrap_servers,
            self.topic(topic),
            [(event.key().encode(), encode(event)) for event in events],
        )

    async def place(self, seller_id: str, token: str, **overrides: Any) -> OrderPlaced:
        """Checkout publishes an order paid by the card behind `token`."""
        method = {"type": "credit_card", "card_token": token, "brand": "visa", "last4": "4242"}
        event = placed_order(seller_id=seller_id, payment_method=method, **overrides)
        await self.publish("orders.placed", event)
        return event

    async def issue(self, order: OrderPlaced, **options: Any) -> InvoiceIssued:
        """Invoicing confirms an invoice for the order."""
        event = invoice_issued(order, **options)
        await self.publish("invoices.events", event)
        return event

    async def payment(self, seller_id: str, invoice_id: str) -> httpx.Response:
        return await self.http.get(
            "/v1/payments", params={"invoice_id": invoice_id}, headers=bearer(seller_id)
        )

    async def wait_for_status(self, seller_id: str, invoice_id: str, status: str) -> Any:
        """The payment as the seller sees it, once its last attempt has `status`."""

        async def current() -> str | None:
            response = await self.payment(seller_id, invoice_id)
            return response.json()["status"] if response.status_code == 200 else None

        await wait_until(current, equals=status, timeout=30)
        return (await self.payment(seller_id, invoice_id)).json()

    async def retry(self, seller_id: str, invoice_id: str, **headers: str) -> httpx.Response:
        return await self.http.post(
            f"/v1/invoices/{invoice_id}/payment/retry",
            headers={**bearer(seller_id), **headers},
        )

    async def charges(self, invoice_id: str) -> list[dict[str, Any]]:
        """The charges the processor made for the invoice, as anyone can count them."""
        response = await self.sandbox.get("/v1/charges", params={"reference": invoice_id})
        listed: list[dict[str, Any]] = response.json()
        return listed

    async def outcomes(self, invoice_id: str, count: int) -> list[dict[str, Any]]:
        """The payment events published for the invoice (read from the start), once each.

        Publishing is at-least-once: the same event (same `event_id`) may be on the topic twice,
        and consumers ignore the repeat, so the repeat is dropped here too. A second event with
        its own id would still show.
        """

        def mine(records: list[Any]) -> list[dict[str, Any]]:
            events: dict[str, dict[str, Any]] = {}
            for record in records:
                if record.key == invoice_id.encode():
                    event = json.loads(record.value)
                    events.setdefault(event["event_id"], event)
            return list(events.values())

        records = await read_topic(
            self.settings.kafka_bootstrap_servers,
            self.topic("payments.events"),
            until=lambda records: len(mine(records)) >= count,
        )
        return mine(records)


@pytest.fixture(scope="module")
async def payments_service(infra: Any) -> AsyncIterator[PaymentsUnderTest]:
    """One payments service (and sandbox) per test module; tests use their own invoice ids."""
    unique = uuid.uuid4().hex[:10]
    database_name = f"test_{unique}"
    async with serving(create_sandbox_app(Sandbox(slow_seconds=5.0))) as sandbox_url:
        await infra.provision(f"t{unique}.")
        settings = make_settings(infra, database_name, f"t{unique}.", sandbox_url)
        try:
            async with (
                serving(build_app(settings)) as base_url,
                httpx.AsyncClient(base_url=base_url, timeout=30) as http,
                httpx.AsyncClient(base_url=sandbox_url, timeout=30) as sandbox,
            ):
                yield PaymentsUnderTest(http=http, sandbox=sandbox, settings=settings)
        finally:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
            await client.drop_database(database_name)
            await client.close()

"""The orders service on real Kafka and FerretDB, reached over real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from juniper_shared.contracts.events import Envelope
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
from orders.bootstrap import build_app
from orders.settings import OrdersSettings


@dataclass
class OrdersUnderTest:
    http: httpx.AsyncClient
    settings: OrdersSettings
    prefix: str

    def topic(self, name: str) -> str:
        return self.prefix + name

    def as_seller(self, seller_id: str) -> dict[str, str]:
        return bearer(seller_id)

    async def place(self, *events: Envelope) -> None:
        await publish_raw(
            self.settings.kafka_bootstrap_servers,
            self.topic("orders.placed"),
            [(event.key().encode(), encode(event)) for event in events],
        )

    async def place_and_wait(self, seller_id: str, **overrides: Any) -> dict[str, Any]:
        """Publish one placed order as checkout would; return it as the seller sees it."""
        event = placed_order(seller_id=seller_id, **overrides)
        await self.place(event)
        return await self.wait_for_order(seller_id, event.data.order_id)

    async def wait_for_order(self, seller_id: str, order_id: str) -> dict[str, Any]:
        async def status() -> int:
            response = await self.http.get(
                f"/v1/orders/{order_id}", headers=self.as_seller(seller_id)
            )
            return response.status_code

        await wait_until(status, equals=200)
        response = await self.http.get(f"/v1/orders/{order_id}", headers=self.as_seller(seller_id))
        body: dict[str, Any] = response.json()
        return body

    async def events(self, until: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        records = await read_topic(
            self.settings.kafka_bootstrap_servers,
            self.topic("orders.events"),
            until=lambda records: until([json.loads(record.value) for record in records]),
        )
        return [json.loads(record.value) for record in records]


def make_settings(infra: Any, database_name: str, prefix: str) -> OrdersSettings:
    return OrdersSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        mongodb_url=infra.mongodb_url,
        mongodb_database=database_name,
        kafka_topic_prefix=prefix,
        auth_jwt_secret="dev-only-secret",  # type: ignore[arg-type]
        **kafka_credentials("orders"),
        outbox_poll_seconds=0.5,
    )


@pytest.fixture
async def orders_service(
    infra: Any, database_name: str, unique: str
) -> AsyncIterator[OrdersUnderTest]:
    prefix = f"t{unique}."
    await infra.provision(prefix)
    settings = make_settings(infra, database_name, prefix)
    async with (
        serving(build_app(settings)) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
    ):
        yield OrdersUnderTest(http=http, settings=settings, prefix=prefix)

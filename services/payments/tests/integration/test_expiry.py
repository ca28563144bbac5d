"""An order that expired is never invoiced: payments keeps no card for it. On real Kafka and
FerretDB."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from juniper_testkit import wait_until
from pymongo import AsyncMongoClient

from ..builders import expired_of
from .conftest import PaymentsUnderTest

pytestmark = pytest.mark.integration


async def test_an_expired_orders_card_is_forgotten_unless_an_order_split_off_it_pays_with_it(
    payments_service: PaymentsUnderTest,
) -> None:
    seller = f"seller-{uuid.uuid4().hex[:8]}"
    other = f"seller-{uuid.uuid4().hex[:8]}"
    lone = await payments_service.place(seller, "tok_visa")
    parent = await payments_service.place(seller, "tok_visa")
    settings = payments_service.settings
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    vault = client[settings.mongodb_database]["card_vault"]

    async def kept() -> set[str]:
        ids = [lone.data.order_id, parent.data.order_id]
        return {document["_id"] async for document in vault.find({"_id": {"$in": ids}})}

    try:
        await wait_until(kept, equals={lone.data.order_id, parent.data.order_id})
        # Another seller's order.expired naming this seller's order removes nothing.
        forged = expired_of(lone).model_copy(update={"seller_id": other})
        await payments_service.publish("orders.events", forged)
        await payments_service.publish(
            "orders.events",
            expired_of(lone),
            expired_of(parent, split_into=[f"{parent.data.order_id}-1"]),
        )
        await wait_until(kept, equals={parent.data.order_id})
    finally:
        await client.close()

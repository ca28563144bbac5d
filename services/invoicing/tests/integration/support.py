"""Test helpers for invoicing on real Kafka and FerretDB: the service on real HTTP, order and
payment events produced on the test's own prefixed topics."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from invoicing.settings import InvoicingSettings
from juniper_shared.contracts.common import OrderSnapshot
from juniper_shared.contracts.events import (
    Envelope,
    OrderAccepted,
    OrderAcceptedData,
    OrderCancelled,
    OrderCancelledData,
    OrderSplit,
    OrderSplitData,
    OrderUpdated,
    OrderUpdatedData,
    PaymentFailed,
    PaymentFailedData,
    PaymentSucceeded,
    PaymentSucceededData,
)
from juniper_shared.contracts.registry import (
    INVOICES_EVENTS,
    ORDERS_EVENTS,
    PAYMENTS_EVENTS,
    encode,
)
from juniper_testkit import ADDRESS, bearer, kafka_credentials, publish_raw, read_topic, wait_until

SHIPPING = {
    "carrier": "UPS",
    "tracking_number": "1Z999AA10123456784",
    "shipped_at": "2026-11-27",
    "shipping_cost": "15.00",
}


def snapshot(
    order_id: str,
    *,
    seller_id: str = "seller-1",
    version: int = 2,
    status: str = "approved",
    items: list[tuple[str, str, str, int]] | None = None,
    payment_method: dict[str, Any] | None = None,
    split_from: str | None = None,
) -> OrderSnapshot:
    rows = items or [("MUG-1", "Stoneware mug", "12.50", 4), ("TEA-2", "Green tea tin", "8.00", 2)]
    lines = [
        {
            "line_id": f"L{index}",
            "sku": sku,
            "name": name,
            "unit_price": price,
            "quantity": quantity,
            "line_total": str(float(price) * quantity),
        }
        for index, (sku, name, price, quantity) in enumerate(rows, start=1)
    ]
    return OrderSnapshot.model_validate(
        {
            "order_id": order_id,
            "seller_id": seller_id,
            "seller_name": "Juniper Pottery",
            "status": status,
            "version": version,
            "placed_at": datetime(2026, 11, 20, tzinfo=UTC),
            "currency": "USD",
            "buyer": {
                "id": "buyer-1",
                "name": "Ada Buyer",
                "email": "ada@example.com",
                "company": "Maple & Co",
            },
            "items": [{**line, "line_total": "0"} for line in lines],
            "subtotal": "0",
            "shipping_fee": "0",
            "total": "0",
            "shipping_address": ADDRESS,
            "billing_address": ADDRESS,
            "payment_method": payment_method
            or {"type": "credit_card", "brand": "visa", "last4": "4242"},
            "split_from": split_from,
        }
    )


def accepted(order: OrderSnapshot) -> OrderAccepted:
    return OrderAccepted(
        producer="orders", seller_id=order.seller_id, data=OrderAcceptedData(order=order)
    )


def updated(order: OrderSnapshot) -> OrderUpdated:
    return OrderUpdated(
        producer="orders", seller_id=order.seller_id, data=OrderUpdatedData(order=order)
    )


def cancelled(order: OrderSnapshot) -> OrderCancelled:
    return OrderCancelled(
        producer="orders", seller_id=order.seller_id, data=OrderCancelledData(order=order)
    )


def split(parent: OrderSnapshot, new_order: OrderSnapshot) -> OrderSplit:
    return OrderSplit(
        producer="orders",
        seller_id=parent.seller_id,
        data=OrderSplitData(parent=parent, new_order=new_order, moved_line_ids=["L2"]),
    )


def payment_succeeded(invoice: dict[str, Any], *, attempt: int = 1) -> PaymentSucceeded:
    return PaymentSucceeded(
        producer="payments",
        seller_id=invoice["seller_id"],
        data=PaymentSucceededData(
            invoice_id=invoice["invoice_id"],
            order_id=invoice["order_id"],
            attempt=attempt,
            amount=invoice["total"],
            currency=invoice["currency"],
            processor_ref=f"ch_{uuid.uuid4().hex[:8]}",
        ),
    )


def payment_failed(invoice: dict[str, Any], *, attempt: int = 1) -> PaymentFailed:
    return PaymentFailed(
        producer="payments",
        seller_id=invoice["seller_id"],
        data=PaymentFailedData(
            invoice_id=invoice["invoice_id"],
            order_id=invoice["order_id"],
            attempt=attempt,
            amount=invoice["total"],
            currency=invoice["currency"],
            reason="card_declined",
            retryable=False,
        ),
    )


@dataclass
class Invoicing:
    """The running service and the test's ends of its topics."""

    base_url: str
    prefix: str
    bootstrap: str
    http: httpx.AsyncClient

    async def publish_orders(self, events: list[Envelope], *, key: str | None = None) -> None:
        """Publish order events; one `key` for all keeps them in one partition, in order."""
        await publish_raw(
            self.bootstrap,
            self.prefix + ORDERS_EVENTS.name,
            [((key or event.key()).encode(), encode(event)) for event in events],
        )

    async def publish_payments(self, events: list[Envelope], *, key: str | None = None) -> None:
        await publish_raw(
            self.bootstrap,
            self.prefix + PAYMENTS_EVENTS.name,
            [((key or event.key()).encode(), encode(event)) for event in events],
        )

    async def preview(
        self, order_id: str, *, seller_id: str = "seller-1", **shipping: str
    ) -> httpx.Response:
        return await self.http.post(
            f"/v1/orders/{order_id}/invoice/preview",
            json={"shipping": {**SHIPPING, **shipping}},
            headers=bearer(seller_id),
        )

    async def confirm(self, invoice_id: str, *, seller_id: str = "seller-1") -> httpx.Response:
        return await self.http.post(f"/v1/invoices/{invoice_id}/confirm", headers=bearer(seller_id))

    async def invoice(self, invoice_id: str, *, seller_id: str = "seller-1") -> httpx.Response:
        return await self.http.get(f"/v1/invoices/{invoice_id}", headers=bearer(seller_id))

    async def until_previewable(
        self, order_id: str, *, seller_id: str = "seller-1"
    ) -> dict[str, Any]:
        """Wait until the read model knows the approved order; returns its draft invoice."""

        async def status() -> int:
            return (await self.preview(order_id, seller_id=seller_id)).status_code

        await wait_until(status, equals=200)
        response = await self.preview(order_id, seller_id=seller_id)
        body: dict[str, Any] = response.json()
        return body

    async def until_status(self, invoice_id: str, expected: str) -> dict[str, Any]:
        async def status() -> str:
            return str((await self.invoice(invoice_id)).json()["status"])

        await wait_until(status, equals=expected)
        body: dict[str, Any] = (await self.invoice(invoice_id)).json()
        return body

    async def invoice_events(
        self, until: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        """Events on the test's invoices.events topic, read until `until` holds."""
        decoded: list[dict[str, Any]] = []

        def enough(records: list[Any]) -> bool:
            decoded[:] = distinct(
                [INVOICES_EVENTS.decode(r.value).model_dump(mode="json") for r in records]
            )
            return until(decoded)

        await read_topic(self.bootstrap, self.prefix + INVOICES_EVENTS.name, until=enough)
        return decoded


def distinct(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events once each: the outbox publishes at least once, consumers dedupe by event_id."""
    return list({event["event_id"]: event for event in events}.values())


def invoicing_settings(infra: Any, database_name: str, unique: str, port: int) -> InvoicingSettings:
    return InvoicingSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        mongodb_url=infra.mongodb_url,
        mongodb_database=database_name,
        kafka_topic_prefix=f"t{unique}.",
        auth_jwt_secret="dev-only-secret",
        **kafka_credentials("invoicing"),
        outbox_poll_seconds=0.5,
        http_port=port,
        mongodb_max_pool_size=20,
    )

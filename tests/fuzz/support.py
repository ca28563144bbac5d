"""Builders of the events other services publish, and small Kafka/HTTP helpers for the fuzzers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaProducer
from juniper_shared.contracts.common import (
    CardSummary,
    InvoiceLine,
    OrderLine,
    OrderSnapshot,
    summarize_payment_method,
)
from juniper_shared.contracts.events import (
    Envelope,
    InvoiceIssued,
    InvoiceIssuedData,
    OrderAccepted,
    OrderAcceptedData,
    OrderPlaced,
    OrderRejected,
    OrderRejectedData,
    PaymentSucceeded,
    PaymentSucceededData,
)
from juniper_shared.contracts.registry import encode
from juniper_testkit import bearer, kafka_options, placed_order, wait_until, writer_of

from .stack import Stack

T = TypeVar("T")

Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]
"""(key, value, headers) as a producer sends them."""


def run(coroutine: Awaitable[T]) -> T:
    """Run async test code from a sync test (the services run in their own thread)."""

    async def main() -> T:
        return await coroutine

    return asyncio.run(main())


def record_of(event: Envelope) -> Record:
    """An event as its writer publishes it: key, JSON envelope, type header."""
    return (event.key().encode(), encode(event), [("type", event.type.encode())])


async def produce(
    bootstrap: str,
    topic: str,
    records: list[Record],
    *,
    max_request_size: int = 1048576,
    principal: str | None = None,
) -> None:
    """Publish `records` in order (one partition per key) and wait until Kafka has them all;
    as the topic's writer unless `principal` says otherwise."""
    producer = AIOKafkaProducer(
        **kafka_options(bootstrap, principal or writer_of(topic)),
        enable_idempotence=True,
        max_request_size=max_request_size,
        linger_ms=5,
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, headers=headers)
            for key, value, headers in records
        ]
        return list(await asyncio.gather(*futures))
    finally:
        await producer.stop()


def placed(seller_id: str, *, token: str = "tok_visa", **overrides: Any) -> OrderPlaced:
    method = {"type": "credit_card", "card_token": token, "brand": "visa", "last4": "4242"}
    return placed_order(seller_id=seller_id, payment_method=method, **overrides)


def snapshot(order: OrderPlaced, *, status: str = "approved", version: int = 2) -> OrderSnapshot:
    """The order as the orders service publishes it after a decision."""
    data = order.data
    lines = [
        OrderLine(
            line_id=f"l{index}",
            sku=item.sku,
            name=item.name,
            unit_price=item.unit_price,
            quantity=item.quantity,
            line_total=item.unit_price * item.quantity,
        )
        for index, item in enumerate(data.items, start=1)
    ]
    subtotal = sum((line.line_total for line in lines), Decimal("0"))
    shipping = data.shipping_fee or Decimal("0")
    return OrderSnapshot.model_validate(
        {
            "order_id": data.order_id,
            "seller_id": data.seller_id,
            "status": status,
            "version": version,
            "placed_at": data.placed_at,
            "currency": data.currency,
            "buyer": data.buyer,
            "items": lines,
            "subtotal": subtotal,
            "shipping_fee": shipping,
            "total": subtotal + shipping,
            "shipping_address": data.shipping_address,
            "billing_address": data.billing_address,
            "payment_method": summarize_payment_method(data.payment_method),
        }
    )


def accepted(order: OrderPlaced) -> OrderAccepted:
    return OrderAccepted(
        producer="orders",
        seller_id=order.seller_id,
        data=OrderAcceptedData(order=snapshot(order)),
    )


def rejected(order: OrderPlaced) -> OrderRejected:
    return OrderRejected(
        producer="orders",
        seller_id=order.seller_id,
        data=OrderRejectedData(
            order=snapshot(order, status="rejected"), reason="out_of_stock", message="sold out"
        ),
    )


def invoice_issued(order: OrderPlaced, *, invoice_id: str | None = None) -> InvoiceIssued:
    """What invoicing publishes when the seller confirms an invoice for `order`."""
    order_snapshot = snapshot(order)
    invoice_id = invoice_id or f"inv-{uuid.uuid4().hex[:12]}"
    lines = [
        InvoiceLine(
            sku=line.sku,
            name=line.name,
            unit_price=line.unit_price,
            quantity=line.quantity,
            line_total=line.line_total,
        )
        for line in order_snapshot.items
    ]
    return InvoiceIssued(
        producer="invoicing",
        seller_id=order.seller_id,
        data=InvoiceIssuedData(
            invoice_id=invoice_id,
            number="INV-000001",
            order_id=order.data.order_id,
            seller_id=order.seller_id,
            buyer=order.data.buyer,
            lines=lines,
            subtotal=order_snapshot.subtotal,
            shipping_cost=Decimal("0"),
            amount=order_snapshot.subtotal,
            currency=order.data.currency,
            payment_method=CardSummary(type="credit_card", brand="visa", last4="4242"),
            issued_at=datetime.now(UTC),
            due_date=date.today(),
            url=f"http://invoices.test/{invoice_id}",
        ),
    )


def payment_succeeded(
    *, invoice_id: str, order_id: str, seller_id: str, amount: Decimal, currency: str = "USD"
) -> PaymentSucceeded:
    return PaymentSucceeded(
        producer="payments",
        seller_id=seller_id,
        data=PaymentSucceededData(
            invoice_id=invoice_id,
            order_id=order_id,
            attempt=1,
            amount=amount,
            currency=currency,
            processor_ref=f"ch_{uuid.uuid4().hex[:12]}",
        ),
    )


def client(stack: Stack, service: str, seller_id: str | None = None) -> httpx.AsyncClient:
    headers = bearer(seller_id) if seller_id else {}
    return httpx.AsyncClient(base_url=stack.urls[service], headers=headers, timeout=30)


async def eventually(probe: Callable[[], Awaitable[Any]], equals: Any, timeout: float = 30) -> Any:
    return await wait_until(probe, equals=equals, timeout=timeout, interval=0.2)


async def status_of(http: httpx.AsyncClient, path: str, **params: Any) -> int:
    return (await http.get(path, params=params)).status_code


async def ungate(stack: Stack, seller_id: str) -> None:
    """The seller turns "Buyer Access Requires Approval" off (before orders are placed)."""
    async with client(stack, "orders", seller_id) as orders:
        answer = await orders.put(
            "/v1/seller/settings", json={"buyer_access_requires_approval": False}
        )
        assert answer.status_code == 200, answer.text


async def accept(orders: httpx.AsyncClient, order_id: str) -> httpx.Response:
    """Accept a pending order, creating a customer for a buyer the seller does not know yet."""
    await eventually(lambda: status_of(orders, f"/v1/orders/{order_id}"), 200)
    response = await orders.post(f"/v1/orders/{order_id}/accept")
    if response.status_code == 409 and response.json()["error"]["code"] == "customer_required":
        new = {"create": {"name": "Maple & Co", "email": "buyer@example.com"}}
        response = await orders.post(f"/v1/orders/{order_id}/accept", json={"customer": new})
    return response


async def issued_invoice(stack: Stack, order: OrderPlaced, *, shipping_cost: str = "5.00") -> str:
    """Accept the placed `order` (of an ungated seller) and confirm its invoice over HTTP."""
    seller = order.seller_id
    order_id = order.data.order_id
    async with (
        client(stack, "orders", seller) as orders,
        client(stack, "invoicing", seller) as invoicing,
    ):
        response = await accept(orders, order_id)
        assert response.status_code == 200, response.text
        shipping = {
            "carrier": "UPS",
            "tracking_number": "1Z999",
            "shipped_at": date.today().isoformat(),
            "shipping_cost": shipping_cost,
        }

        async def preview() -> int:
            answer = await invoicing.post(
                f"/v1/orders/{order_id}/invoice/preview", json={"shipping": shipping}
            )
            preview.last = answer  # type: ignore[attr-defined]
            return answer.status_code

        await eventually(preview, 200)
        invoice_id: str = preview.last.json()["invoice_id"]  # type: ignore[attr-defined]
        confirmed = await invoicing.post(f"/v1/invoices/{invoice_id}/confirm")
        assert confirmed.status_code == 200, confirmed.text
        return invoice_id

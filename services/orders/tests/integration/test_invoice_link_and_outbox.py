"""What invoicing tells the orders service, and events surviving a crash before publishing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from juniper_shared.contracts.common import Buyer
from juniper_shared.contracts.events import (
    InvoiceIssued,
    InvoiceIssuedData,
    InvoicePaid,
    InvoicePaidData,
)
from juniper_shared.contracts.registry import encode
from juniper_testkit import placed_order, publish_raw, read_topic, serving, wait_until
from orders.bootstrap import build_app

from .conftest import OrdersUnderTest, make_settings

pytestmark = pytest.mark.integration

SELLER = "seller-invoiced"
BUYER = Buyer(id="buyer-1", name="Ada Buyer", email="ada@example.com")


async def accept(service: OrdersUnderTest) -> dict[str, Any]:
    await service.http.put(
        "/v1/seller/settings",
        json={"buyer_access_requires_approval": False},
        headers=service.as_seller(SELLER),
    )
    order = await service.place_and_wait(SELLER)
    response = await service.http.post(
        f"/v1/orders/{order['order_id']}/accept",
        headers=service.as_seller(SELLER),
        json={"customer": {"create": {"name": "Maple", "email": "m@maple.example"}}},
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_the_all_orders_row_shows_the_invoice_link_then_paid(
    orders_service: OrdersUnderTest,
) -> None:
    order = await accept(orders_service)
    invoice_id = f"inv-{order['order_id']}"
    url = f"http://127.0.0.1:8002/v1/invoices/{invoice_id}/document"
    issued = InvoiceIssued(
        producer="invoicing",
        seller_id=SELLER,
        data=InvoiceIssuedData(
            invoice_id=invoice_id,
            number="INV-000007",
            order_id=order["order_id"],
            seller_id=SELLER,
            buyer=BUYER,
            lines=[],
            subtotal="50.00",
            shipping_cost="0",
            amount="50.00",
            currency="USD",
            payment_method={"type": "credit_card", "brand": "visa", "last4": "4242"},
            issued_at=datetime.now(UTC),
            url=url,
        ),
    )
    topic = orders_service.topic("invoices.events")
    await publish_raw(
        orders_service.settings.kafka_bootstrap_servers,
        topic,
        [(invoice_id.encode(), encode(issued))] * 2,
    )

    async def row() -> Any:
        listing = (
            await orders_service.http.get("/v1/orders", headers=orders_service.as_seller(SELLER))
        ).json()
        match = next(r for r in listing["items"] if r["order_id"] == order["order_id"])
        return (match["invoice"], match["payment_status"])

    await wait_until(
        row,
        equals=(
            {"invoice_id": invoice_id, "number": "INV-000007", "status": "issued", "url": url},
            "pending",
        ),
    )
    cancel = await orders_service.http.post(
        f"/v1/orders/{order['order_id']}/cancel",
        headers=orders_service.as_seller(SELLER),
        json={"message": "x"},
    )
    assert cancel.status_code == 409

    paid = InvoicePaid(
        producer="invoicing",
        seller_id=SELLER,
        data=InvoicePaidData(
            invoice_id=invoice_id,
            number="INV-000007",
            order_id=order["order_id"],
            buyer=BUYER,
            url=url,
            amount="50.00",
            currency="USD",
            paid_at=datetime.now(UTC),
        ),
    )
    await publish_raw(
        orders_service.settings.kafka_bootstrap_servers,
        topic,
        [(invoice_id.encode(), encode(paid))],
    )
    await wait_until(
        row,
        equals=(
            {"invoice_id": invoice_id, "number": "INV-000007", "status": "paid", "url": url},
            "paid",
        ),
    )
    details = (
        await orders_service.http.get(
            f"/v1/orders/{order['order_id']}", headers=orders_service.as_seller(SELLER)
        )
    ).json()
    assert [e["type"] for e in details["history"]].count("invoiced") == 1


def issued_event(order_id: str, *, seller_id: str, url: str) -> InvoiceIssued:
    invoice_id = f"inv-{order_id}"
    return InvoiceIssued(
        producer="invoicing",
        seller_id=seller_id,
        data=InvoiceIssuedData(
            invoice_id=invoice_id,
            number="INV-000666",
            order_id=order_id,
            seller_id=seller_id,
            buyer=BUYER,
            lines=[],
            subtotal="50.00",
            shipping_cost="0",
            amount="50.00",
            currency="USD",
            payment_method={"type": "other"},
            issued_at=datetime.now(UTC),
            url=url,
        ),
    )


async def test_an_invoice_event_of_another_seller_is_dead_lettered_and_changes_nothing(
    orders_service: OrdersUnderTest,
) -> None:
    order = await accept(orders_service)
    forged = issued_event(order["order_id"], seller_id="seller-intruder", url="https://evil.test/")
    await publish_raw(
        orders_service.settings.kafka_bootstrap_servers,
        orders_service.topic("invoices.events"),
        [(forged.key().encode(), encode(forged))],
    )
    [letter] = await read_topic(
        orders_service.settings.kafka_bootstrap_servers,
        orders_service.topic("invoices.events.dlq"),
        until=lambda records: len(records) >= 1,
    )
    assert json.loads(letter.value)["event_id"] == str(forged.event_id)
    assert b"another seller" in dict(letter.headers)["dlq-error"]
    seller = orders_service.as_seller(SELLER)
    details = await orders_service.http.get(f"/v1/orders/{order['order_id']}", headers=seller)
    assert details.json()["invoice"] is None
    metrics = (await orders_service.http.get("/metrics")).text
    assert 'jm_forged_events_total{topic="invoices.events"}' in metrics
    # The order was not locked by the fake invoice: the seller can still cancel it.
    cancel = await orders_service.http.post(
        f"/v1/orders/{order['order_id']}/cancel", headers=seller, json={"message": "x"}
    )
    assert cancel.status_code == 200


async def test_events_stored_before_a_crash_are_published_after_restart(
    infra: Any, database_name: str, unique: str, mongo_client: Any
) -> None:
    """A write landed with its event in the outbox, then the process died before publishing."""
    prefix = f"t{unique}."
    await infra.provision(prefix)
    settings = make_settings(infra, database_name, prefix)
    event = placed_order(seller_id=SELLER)
    stranded = {
        "event_id": str(uuid.uuid4()),
        "topic": "orders.events",
        "key": event.data.order_id,
        "type": "order.accepted",
        "payload": '{"type": "order.accepted", "marker": "stranded"}',
    }
    async with (
        serving(build_app(settings)) as base_url,
        httpx.AsyncClient(base_url=base_url) as http,
    ):
        await http.put(
            "/v1/seller/settings", json={"buyer_access_requires_approval": False}, headers=_seller()
        )
        await publish_raw(infra.kafka_bootstrap, prefix + "orders.placed", [(b"k", encode(event))])
        orders = mongo_client[database_name]["orders"]
        await wait_until(lambda: orders.count_documents({"_id": event.data.order_id}), equals=1)
    # The service is down; simulate the crash window: an event stored but never published.
    await orders.update_one(
        {"_id": event.data.order_id},
        {"$push": {"outbox": stranded}, "$set": {"outbox_pending": True}},
    )
    async with serving(build_app(settings)):
        records = await read_topic(
            infra.kafka_bootstrap,
            prefix + "orders.events",
            until=lambda records: any(b"stranded" in r.value for r in records),
        )
        assert sum(b"stranded" in r.value for r in records) >= 1
        await wait_until(lambda: _outbox_size(orders, event.data.order_id), equals=0)


async def _outbox_size(orders: Any, order_id: str) -> int:
    document = await orders.find_one({"_id": order_id})
    return len(document.get("outbox") or [])


def _seller() -> dict[str, str]:
    from juniper_testkit import bearer

    return bearer(SELLER)

"""A cancel that raced a confirm: invoicing voids the invoice, the All Orders row shows it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from juniper_shared.contracts.events import (
    InvoiceIssued,
    InvoiceIssuedData,
    InvoiceVoided,
    InvoiceVoidedData,
)
from juniper_shared.contracts.registry import encode
from juniper_testkit import publish_raw, wait_until

from .conftest import OrdersUnderTest
from .test_invoice_link_and_outbox import BUYER, SELLER, accept

pytestmark = pytest.mark.integration


async def test_a_cancelled_orders_voided_invoice_shows_void_on_the_all_orders_row(
    orders_service: OrdersUnderTest,
) -> None:
    order = await accept(orders_service)
    order_id = order["order_id"]
    cancel = await orders_service.http.post(
        f"/v1/orders/{order_id}/cancel",
        headers=orders_service.as_seller(SELLER),
        json={"message": "Out of clay"},
    )
    assert cancel.status_code == 200
    invoice_id = f"inv-{order_id}"
    url = f"http://127.0.0.1:8002/v1/invoices/{invoice_id}/document"
    common: dict[str, Any] = {
        "invoice_id": invoice_id,
        "number": "INV-000003",
        "order_id": order_id,
        "buyer": BUYER,
        "amount": "50.00",
        "currency": "USD",
        "url": url,
    }
    # Invoicing confirmed from its older copy of the order, then heard of the cancel.
    issued = InvoiceIssued(
        producer="invoicing",
        seller_id=SELLER,
        data=InvoiceIssuedData(
            **common,
            seller_id=SELLER,
            lines=[],
            subtotal="50.00",
            shipping_cost="0",
            payment_method={"type": "credit_card", "brand": "visa", "last4": "4242"},
            issued_at=datetime.now(UTC),
        ),
    )
    voided = InvoiceVoided(
        producer="invoicing",
        seller_id=SELLER,
        data=InvoiceVoidedData(**common, voided_at=datetime.now(UTC)),
    )
    await publish_raw(
        orders_service.settings.kafka_bootstrap_servers,
        orders_service.topic("invoices.events"),
        [(invoice_id.encode(), encode(event)) for event in (issued, voided, voided)],
    )

    async def row() -> Any:
        listing = (
            await orders_service.http.get("/v1/orders", headers=orders_service.as_seller(SELLER))
        ).json()
        match = next(r for r in listing["items"] if r["order_id"] == order_id)
        return (match["status"], match["invoice"], match["payment_status"])

    await wait_until(
        row,
        equals=(
            "cancelled",
            {"invoice_id": invoice_id, "number": "INV-000003", "status": "void", "url": url},
            "pending",  # unchanged: the refund is told on payments.events, shown by invoicing
        ),
    )
    details = (
        await orders_service.http.get(
            f"/v1/orders/{order_id}", headers=orders_service.as_seller(SELLER)
        )
    ).json()
    kinds = [entry["type"] for entry in details["history"]]
    assert kinds[-3:] == ["cancelled", "invoiced", "invoice_voided"]

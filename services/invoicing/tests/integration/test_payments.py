"""Payment outcomes from payments.events: paid, failed, failed-then-paid, nothing after paid."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from juniper_testkit import read_topic

from .support import (
    Invoicing,
    accepted,
    cancelled,
    payment_failed,
    payment_succeeded,
    snapshot,
)

pytestmark = pytest.mark.integration


async def issued_invoice(service: Invoicing, order_id: str) -> dict[str, Any]:
    await service.publish_orders([accepted(snapshot(order_id))])
    invoice_id = (await service.until_previewable(order_id))["invoice_id"]
    assert (await service.confirm(invoice_id)).status_code == 200
    body: dict[str, Any] = (await service.invoice(invoice_id)).json()
    return body


def of_types(events: list[dict[str, Any]], invoice_id: str) -> list[str]:
    return [e["type"] for e in events if e["data"]["invoice_id"] == invoice_id]


async def test_a_successful_charge_marks_the_invoice_paid_once(
    service: Invoicing, unique: str
) -> None:
    invoice = await issued_invoice(service, f"ord-{unique}")
    success = payment_succeeded(invoice)
    await service.publish_payments([success, success])  # delivered twice
    paid = await service.until_status(invoice["invoice_id"], "paid")
    assert paid["payment_status"] == "paid"

    events = await service.invoice_events(
        until=lambda found: "invoice.paid" in of_types(found, invoice["invoice_id"])
    )
    paid_events = [e for e in events if e["type"] == "invoice.paid"]
    data = paid_events[0]["data"]
    assert (data["number"], data["amount"], data["currency"]) == ("INV-000001", "81.00", "USD")
    assert (data["buyer"]["email"], data["seller_name"]) == ("ada@example.com", "Juniper Pottery")
    assert data["url"].endswith(f"/v1/invoices/{invoice['invoice_id']}/document")
    assert data["processor_ref"] == success.data.processor_ref

    # A marker on the same key proves the duplicate was consumed before we count.
    marker = await issued_invoice(service, f"mark-{unique}")
    await service.publish_payments([payment_failed(marker)], key=invoice["invoice_id"])
    await service.until_status(marker["invoice_id"], "payment_failed")
    events = await service.invoice_events(
        until=lambda found: "invoice.payment_failed" in of_types(found, marker["invoice_id"])
    )
    assert of_types(events, invoice["invoice_id"]) == ["invoice.issued", "invoice.paid"]


async def test_a_failed_charge_then_a_retry_that_succeeds_ends_paid_and_stays_paid(
    service: Invoicing, unique: str
) -> None:
    invoice = await issued_invoice(service, f"ord-{unique}")
    invoice_id = invoice["invoice_id"]
    await service.publish_payments([payment_failed(invoice, attempt=1)])
    failed = await service.until_status(invoice_id, "payment_failed")
    assert failed["payment_status"] == "failed"
    assert failed["payment_failure"] == {
        "reason": "card_declined",
        "retryable": False,
        "attempt": 1,
    }

    await service.publish_payments([payment_succeeded(invoice, attempt=2)])
    assert (await service.until_status(invoice_id, "paid"))["payment_status"] == "paid"

    # A failure reported after the payment changes nothing.
    marker = await issued_invoice(service, f"mark-{unique}")
    await service.publish_payments(
        [payment_failed(invoice, attempt=3), payment_succeeded(marker)], key=invoice_id
    )
    await service.until_status(marker["invoice_id"], "paid")
    assert (await service.invoice(invoice_id)).json()["status"] == "paid"

    events = await service.invoice_events(
        until=lambda found: "invoice.paid" in of_types(found, marker["invoice_id"])
    )
    assert of_types(events, invoice_id) == [
        "invoice.issued",
        "invoice.payment_failed",
        "invoice.paid",
    ]
    failure = next(e for e in events if e["type"] == "invoice.payment_failed")["data"]
    assert (failure["reason"], failure["retryable"], failure["attempt"]) == (
        "card_declined",
        False,
        1,
    )
    assert (failure["number"], failure["amount"], failure["buyer"]["name"]) == (
        "INV-000001",
        "81.00",
        "Ada Buyer",
    )


async def test_payment_events_that_do_not_agree_with_the_invoice_are_dead_lettered(
    service: Invoicing, unique: str
) -> None:
    """Another seller's, another order's, or another amount's success marks nothing paid."""
    invoice = await issued_invoice(service, f"ord-{unique}")
    invoice_id = invoice["invoice_id"]
    genuine = payment_succeeded(invoice)
    forged = [
        genuine.model_copy(update={"seller_id": "seller-intruder", "event_id": uuid.uuid4()}),
        genuine.model_copy(
            update={
                "event_id": uuid.uuid4(),
                "data": genuine.data.model_copy(update={"order_id": "ord-other"}),
            }
        ),
        genuine.model_copy(
            update={
                "event_id": uuid.uuid4(),
                "data": genuine.data.model_copy(update={"amount": Decimal("0.01")}),
            }
        ),
    ]
    await service.publish_payments([*forged, payment_failed(invoice)], key=invoice_id)
    failed = await service.until_status(invoice_id, "payment_failed")
    assert failed["payment_status"] == "failed"
    letters = await read_topic(
        service.bootstrap,
        service.prefix + "payments.events.dlq",
        until=lambda records: len(records) >= 3,
    )
    assert sorted(json.loads(letter.value)["event_id"] for letter in letters) == sorted(
        str(event.event_id) for event in forged
    )
    assert (await service.invoice(invoice_id)).json()["status"] == "payment_failed"


async def test_an_order_cancelled_by_another_seller_voids_no_invoice(
    service: Invoicing, unique: str
) -> None:
    order_id = f"ord-{unique}"
    invoice = await issued_invoice(service, order_id)
    forged = cancelled(snapshot(order_id, seller_id="seller-intruder", version=5))
    await service.publish_orders([forged])
    [letter] = await read_topic(
        service.bootstrap,
        service.prefix + "orders.events.dlq",
        until=lambda records: len(records) >= 1,
    )
    assert json.loads(letter.value)["event_id"] == str(forged.event_id)
    assert (await service.invoice(invoice["invoice_id"])).json()["status"] == "issued"

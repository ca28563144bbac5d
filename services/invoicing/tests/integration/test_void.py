"""A cancel that loses the race with a confirm: the invoice is voided, never paid, refund shown."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from juniper_shared.contracts.events import PaymentRefunded, PaymentRefundedData
from juniper_testkit import wait_until

from .support import (
    Invoicing,
    accepted,
    cancelled,
    payment_failed,
    payment_succeeded,
    snapshot,
)
from .test_payments import issued_invoice, of_types

pytestmark = pytest.mark.integration


def payment_refunded(invoice: dict[str, Any], processor_ref: str) -> PaymentRefunded:
    return PaymentRefunded(
        producer="payments",
        seller_id=invoice["seller_id"],
        data=PaymentRefundedData(
            invoice_id=invoice["invoice_id"],
            order_id=invoice["order_id"],
            attempt=1,
            amount=invoice["total"],
            currency=invoice["currency"],
            processor_ref=processor_ref,
            refund_ref=f"re_{uuid.uuid4().hex[:8]}",
            reason="invoice_voided",
        ),
    )


async def test_an_issued_invoice_of_a_cancelled_order_is_voided_once_and_never_paid(
    service: Invoicing, unique: str
) -> None:
    order_id = f"ord-{unique}"
    invoice = await issued_invoice(service, order_id)  # the confirm won the race
    invoice_id = invoice["invoice_id"]
    cancel = cancelled(snapshot(order_id, status="cancelled", version=3))
    await service.publish_orders([cancel, cancel])  # the cancel, delivered twice

    void = await service.until_status(invoice_id, "void")
    assert (void["number"], void["payment_status"]) == ("INV-000001", "none")
    assert void["voided_at"] is not None
    assert (await service.confirm(invoice_id)).json()["error"]["code"] == "order_not_invoiceable"

    # The charge that was already on its way lands, then payments gives it back.
    charge = payment_succeeded(invoice)
    await service.publish_payments([charge, payment_failed(invoice, attempt=2)])

    async def payment_status() -> str:
        return str((await service.invoice(invoice_id)).json()["payment_status"])

    await wait_until(payment_status, equals="paid")
    await service.publish_payments([payment_refunded(invoice, charge.data.processor_ref)])
    await wait_until(payment_status, equals="refunded")
    shown = (await service.invoice(invoice_id)).json()
    assert (shown["status"], shown["number"]) == ("void", "INV-000001")
    assert shown["refunded_at"] is not None

    # A marker on the same key proves everything before it was consumed before we count.
    marker = await issued_invoice(service, f"mark-{unique}")
    await service.publish_payments([payment_failed(marker)], key=invoice_id)
    await service.until_status(marker["invoice_id"], "payment_failed")
    events = await service.invoice_events(
        until=lambda found: "invoice.payment_failed" in of_types(found, marker["invoice_id"])
    )
    assert of_types(events, invoice_id) == ["invoice.issued", "invoice.voided"]
    voided = next(e for e in events if e["type"] == "invoice.voided")
    data = voided["data"]
    assert (data["number"], data["order_id"], data["amount"], data["currency"]) == (
        "INV-000001",
        order_id,
        "81.00",
        "USD",
    )
    assert (data["reason"], data["buyer"]["email"]) == ("order_cancelled", "ada@example.com")
    assert data["url"].endswith(f"/v1/invoices/{invoice_id}/document")
    assert voided["causation_id"] == str(cancel.event_id)


async def test_a_draft_of_a_cancelled_order_is_voided_quietly_and_uses_no_number(
    service: Invoicing, unique: str
) -> None:
    order_id = f"ord-{unique}"
    await service.publish_orders([accepted(snapshot(order_id))])
    invoice_id = (await service.until_previewable(order_id))["invoice_id"]
    await service.publish_orders([cancelled(snapshot(order_id, status="cancelled", version=3))])

    void = await service.until_status(invoice_id, "void")
    assert (void["number"], void["url"]) == (None, None)
    refused = await service.confirm(invoice_id)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "order_not_invoiceable")
    refused = await service.preview(order_id)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "order_not_invoiceable")

    # The next invoice of the seller takes number 1: the void draft never held one.
    other = await issued_invoice(service, f"next-{unique}")
    assert other["number"] == "INV-000001"
    events = await service.invoice_events(
        until=lambda found: "invoice.issued" in of_types(found, other["invoice_id"])
    )
    assert of_types(events, invoice_id) == []

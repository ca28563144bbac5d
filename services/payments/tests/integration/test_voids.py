"""An invoice voided because its order was cancelled: no charge after the void, a refund after
a charge. On real Kafka, FerretDB and the sandbox processor over HTTP."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from juniper_shared.contracts.events import InvoiceIssued, InvoiceVoided, InvoiceVoidedData
from juniper_testkit import bearer, placed_order, read_topic, wait_until

from ..builders import invoice_issued
from .conftest import PaymentsUnderTest

pytestmark = pytest.mark.integration

CARD = {"type": "credit_card", "card_token": "tok_visa", "brand": "visa", "last4": "4242"}


def seller() -> str:
    return f"seller-{uuid.uuid4().hex[:8]}"


def voided(issued: InvoiceIssued) -> InvoiceVoided:
    data = issued.data
    return InvoiceVoided(
        producer="invoicing",
        seller_id=issued.seller_id,
        correlation_id=issued.correlation_id,
        data=InvoiceVoidedData(
            invoice_id=data.invoice_id,
            number=data.number,
            order_id=data.order_id,
            buyer=data.buyer,
            url=data.url,
            amount=data.amount,
            currency=data.currency,
            voided_at=data.issued_at,
        ),
    )


async def refund_of(service: PaymentsUnderTest, me: str, invoice_id: str) -> Any:
    async def status() -> str | None:
        refund = (await service.payment(me, invoice_id)).json().get("refund")
        return refund["status"] if refund else None

    await wait_until(status, equals="succeeded", timeout=30)
    return (await service.payment(me, invoice_id)).json()


async def test_a_charged_invoice_that_is_voided_is_refunded_once(
    payments_service: PaymentsUnderTest,
) -> None:
    me = seller()
    invoice = await payments_service.issue(await payments_service.place(me, "tok_visa"))
    invoice_id = invoice.data.invoice_id
    await payments_service.wait_for_status(me, invoice_id, "succeeded")

    await payments_service.publish("invoices.events", voided(invoice), voided(invoice))
    payment = await refund_of(payments_service, me, invoice_id)

    [charge] = await payments_service.charges(invoice_id)
    assert (charge["status"], charge["refunded_amount"]) == ("refunded", "71.00")
    assert payment["voided_at"] is not None
    assert payment["status"] == "succeeded"  # the charge happened; the refund gave it back
    assert (payment["refund"]["charge_ref"], payment["refund"]["attempt"]) == (
        charge["charge_id"],
        1,
    )
    succeeded, refunded = await payments_service.outcomes(invoice_id, 2)
    assert (succeeded["type"], refunded["type"]) == ("payment.succeeded", "payment.refunded")
    data = refunded["data"]
    assert (data["processor_ref"], data["amount"], data["currency"], data["attempt"]) == (
        charge["charge_id"],
        "71.00",
        "USD",
        1,
    )
    assert data["refund_ref"] == payment["refund"]["refund_ref"]
    assert refunded["correlation_id"] == invoice.correlation_id

    retry = await payments_service.retry(me, invoice_id)
    assert (retry.status_code, retry.json()["error"]["code"]) == (409, "invalid_state")


async def test_an_invoice_voided_before_its_charge_was_sent_is_never_charged(
    payments_service: PaymentsUnderTest,
) -> None:
    me = seller()
    order = placed_order(seller_id=me, payment_method=CARD)
    invoice = invoice_issued(order)
    invoice_id = invoice.data.invoice_id
    # The card has not reached the vault yet, so the charge is waiting when the void lands.
    await payments_service.publish("invoices.events", invoice, voided(invoice))
    payment = await payments_service.wait_for_status(me, invoice_id, "voided")
    assert [(a["attempt"], a["status"]) for a in payment["attempts"]] == [(1, "voided")]
    await payments_service.publish("orders.placed", order)  # now the card arrives

    async def charges_in_flight() -> str:
        metrics = (await payments_service.http.get("/metrics")).text
        return next(line for line in metrics.splitlines() if line.startswith("jm_charges_in"))

    await wait_until(charges_in_flight, equals="jm_charges_in_flight 0.0", timeout=30)
    assert await payments_service.charges(invoice_id) == []
    assert (await payments_service.payment(me, invoice_id)).json()["refund"] is None
    retry = await payments_service.http.post(
        f"/v1/invoices/{invoice_id}/payment/retry", headers=bearer(me)
    )
    assert (retry.status_code, retry.json()["error"]["code"]) == (409, "invalid_state")


async def test_a_void_from_another_seller_refunds_nothing(
    payments_service: PaymentsUnderTest,
) -> None:
    me = seller()
    invoice = await payments_service.issue(await payments_service.place(me, "tok_visa"))
    invoice_id = invoice.data.invoice_id
    await payments_service.wait_for_status(me, invoice_id, "succeeded")

    forged = voided(invoice).model_copy(update={"seller_id": "seller-intruder"})
    await payments_service.publish("invoices.events", forged)
    [letter] = await read_topic(
        payments_service.settings.kafka_bootstrap_servers,
        payments_service.topic("invoices.events.dlq"),
        until=lambda records: len(records) >= 1,
    )
    assert json.loads(letter.value)["event_id"] == str(forged.event_id)
    [charge] = await payments_service.charges(invoice_id)
    assert charge["status"] == "succeeded"
    assert (await payments_service.payment(me, invoice_id)).json()["refund"] is None

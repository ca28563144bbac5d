"""A Note on Credit Cards: once the invoice is confirmed the card is charged; paid on success;
after a failure the seller can retry. On real Kafka, FerretDB and the sandbox over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from juniper_shared.contracts.common import NetTerms
from juniper_testkit import bearer, placed_order, wait_until
from pymongo import AsyncMongoClient

from ..builders import split_of
from .conftest import PaymentsUnderTest

pytestmark = pytest.mark.integration


def seller() -> str:
    return f"seller-{uuid.uuid4().hex[:8]}"


async def test_an_invoice_paid_by_card_is_charged_once_and_marked_succeeded(
    payments_service: PaymentsUnderTest,
) -> None:
    me = seller()
    order = await payments_service.place(me, "tok_visa")
    invoice = await payments_service.issue(order)
    invoice_id = invoice.data.invoice_id

    payment = await payments_service.wait_for_status(me, invoice_id, "succeeded")

    charges = await payments_service.charges(invoice_id)
    assert [(c["status"], c["amount"], c["currency"]) for c in charges] == [
        ("succeeded", "71.00", "USD")
    ]
    assert payment["amount"] == "71.00"  # 66.00 of goods + 5.00 shipping
    assert payment["card"] == {"brand": "visa", "last4": "4242"}
    assert [(a["attempt"], a["status"], a["processor_ref"]) for a in payment["attempts"]] == [
        (1, "succeeded", charges[0]["charge_id"])
    ]
    [event] = await payments_service.outcomes(invoice_id, 1)
    assert event["type"] == "payment.succeeded"
    assert event["correlation_id"] == invoice.correlation_id
    assert event["data"]["processor_ref"] == charges[0]["charge_id"]
    assert event["data"]["card"] == {"type": "credit_card", "brand": "visa", "last4": "4242"}
    assert "tok_visa" not in str(event)


@pytest.mark.parametrize(
    ("token", "reason", "retryable"),
    [
        ("tok_declined", "card_declined", True),
        ("tok_insufficient_funds", "insufficient_funds", True),
        ("tok_never_issued", "invalid_card", False),
    ],
)
async def test_a_declined_card_fails_the_payment_without_automatic_retries(
    payments_service: PaymentsUnderTest, token: str, reason: str, retryable: bool
) -> None:
    me = seller()
    invoice = await payments_service.issue(await payments_service.place(me, token))
    invoice_id = invoice.data.invoice_id

    payment = await payments_service.wait_for_status(me, invoice_id, "failed")

    assert [(a["attempt"], a["reason"], a["retryable"]) for a in payment["attempts"]] == [
        (1, reason, retryable)
    ]
    assert [c["status"] for c in await payments_service.charges(invoice_id)] == ["failed"]
    [event] = await payments_service.outcomes(invoice_id, 1)
    assert (event["type"], event["data"]["reason"], event["data"]["retryable"]) == (
        "payment.failed",
        reason,
        retryable,
    )
    assert event["data"]["attempt"] == 1
    metrics = (await payments_service.http.get("/metrics")).text
    assert f'jm_payment_outcomes_total{{reason="{reason}",status="failed"}}' in metrics


async def test_a_flaky_processor_is_retried_until_it_charges_once(
    payments_service: PaymentsUnderTest,
) -> None:
    me = seller()
    invoice = await payments_service.issue(await payments_service.place(me, "tok_transient"))
    invoice_id = invoice.data.invoice_id

    payment = await payments_service.wait_for_status(me, invoice_id, "succeeded")

    assert [c["status"] for c in await payments_service.charges(invoice_id)] == ["succeeded"]
    assert len(payment["attempts"]) == 1  # the 503s were retried inside one attempt


async def test_a_processor_that_stays_down_fails_the_payment_as_retryable(
    payments_service: PaymentsUnderTest,
) -> None:
    me = seller()
    invoice = await payments_service.issue(await payments_service.place(me, "tok_unavailable"))
    invoice_id = invoice.data.invoice_id

    payment = await payments_service.wait_for_status(me, invoice_id, "failed")

    assert [(a["reason"], a["retryable"]) for a in payment["attempts"]] == [
        ("processor_unavailable", True)
    ]
    assert await payments_service.charges(invoice_id) == []


async def test_an_invoice_delivered_twice_is_charged_once(
    payments_service: PaymentsUnderTest,
) -> None:
    me = seller()
    order = await payments_service.place(me, "tok_visa")
    invoice = await payments_service.issue(order)
    await payments_service.publish("invoices.events", invoice)
    invoice_id = invoice.data.invoice_id

    await payments_service.wait_for_status(me, invoice_id, "succeeded")
    await payments_service.publish("invoices.events", invoice)  # and once more, after the fact
    # A marker invoice published after the duplicate: once it is handled, so is the duplicate.
    marker = await payments_service.issue(await payments_service.place(me, "tok_visa"))
    await payments_service.wait_for_status(me, marker.data.invoice_id, "succeeded")

    payment = (await payments_service.payment(me, invoice_id)).json()
    assert [a["attempt"] for a in payment["attempts"]] == [1]
    assert [c["status"] for c in await payments_service.charges(invoice_id)] == ["succeeded"]


async def test_an_invoice_on_net_terms_is_recorded_and_not_charged(
    payments_service: PaymentsUnderTest,
) -> None:
    me = seller()
    order = await payments_service.place(me, "tok_visa")
    invoice = await payments_service.issue(order, method=NetTerms(type="net_terms", days=30))
    invoice_id = invoice.data.invoice_id

    payment = await payments_service.wait_for_status(me, invoice_id, "not_applicable")

    assert payment["card"] is None
    assert await payments_service.charges(invoice_id) == []
    retry = await payments_service.retry(me, invoice_id)
    assert retry.status_code == 409
    assert retry.json()["error"]["code"] == "invalid_state"


async def test_the_seller_retries_a_failed_payment_and_it_succeeds(
    payments_service: PaymentsUnderTest,
) -> None:
    me = seller()
    invoice = await payments_service.issue(await payments_service.place(me, "tok_decline_once"))
    invoice_id = invoice.data.invoice_id
    await payments_service.wait_for_status(me, invoice_id, "failed")

    first = await payments_service.retry(me, invoice_id, **{"Idempotency-Key": "retry-1"})
    again = await payments_service.retry(me, invoice_id, **{"Idempotency-Key": "retry-1"})

    assert first.status_code == 202
    assert (first.json()["attempt"], first.json()["status"]) == (2, "pending")
    assert again.status_code == 202
    assert again.json() == first.json()
    payment = await payments_service.wait_for_status(me, invoice_id, "succeeded")
    assert [(a["attempt"], a["status"]) for a in payment["attempts"]] == [
        (1, "failed"),
        (2, "succeeded"),
    ]
    charges = await payments_service.charges(invoice_id)
    assert [c["status"] for c in charges] == ["failed", "succeeded"]
    events = await payments_service.outcomes(invoice_id, 2)
    assert [(e["type"], e["data"]["attempt"]) for e in events] == [
        ("payment.failed", 1),
        ("payment.succeeded", 2),
    ]
    after_success = await payments_service.retry(me, invoice_id)
    assert after_success.status_code == 409
    assert after_success.json()["error"]["code"] == "invalid_state"


async def test_a_retry_is_refused_while_the_payment_is_still_being_charged(
    payments_service: PaymentsUnderTest,
) -> None:
    me = seller()
    invoice = await payments_service.issue(await payments_service.place(me, "tok_slow"))
    invoice_id = invoice.data.invoice_id
    await payments_service.wait_for_status(me, invoice_id, "pending")

    response = await payments_service.retry(me, invoice_id)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_state"
    await payments_service.wait_for_status(me, invoice_id, "succeeded")


async def test_another_sellers_payment_is_not_found(payments_service: PaymentsUnderTest) -> None:
    me = seller()
    invoice = await payments_service.issue(await payments_service.place(me, "tok_declined"))
    invoice_id = invoice.data.invoice_id
    await payments_service.wait_for_status(me, invoice_id, "failed")

    peek = await payments_service.payment("seller-nosy", invoice_id)
    retry = await payments_service.retry("seller-nosy", invoice_id)
    unknown = await payments_service.payment(me, "inv-does-not-exist")
    anonymous = await payments_service.http.get("/v1/payments", params={"invoice_id": invoice_id})

    assert (peek.status_code, peek.json()["error"]["code"]) == (404, "not_found")
    assert (retry.status_code, retry.json()["error"]["code"]) == (404, "not_found")
    assert unknown.status_code == 404
    assert anonymous.status_code == 401
    assert len((await payments_service.payment(me, invoice_id)).json()["attempts"]) == 1


async def test_an_order_split_off_another_is_charged_to_the_same_card(
    payments_service: PaymentsUnderTest,
) -> None:
    me = seller()
    parent = await payments_service.place(me, "tok_visa")
    child_id = f"{parent.data.order_id}-2"
    await payments_service.publish("orders.events", split_of(parent, child_id))
    invoice = await payments_service.issue(parent, order_id=child_id)
    invoice_id = invoice.data.invoice_id

    payment = await payments_service.wait_for_status(me, invoice_id, "succeeded")

    assert payment["order_id"] == child_id
    assert [c["status"] for c in await payments_service.charges(invoice_id)] == ["succeeded"]


async def test_a_card_that_arrives_after_the_invoice_is_charged_on_the_sellers_retry(
    payments_service: PaymentsUnderTest,
) -> None:
    me = seller()
    order_id = f"ord-late-{uuid.uuid4().hex[:8]}"
    method = {"type": "credit_card", "card_token": "tok_visa", "brand": "visa", "last4": "4242"}
    late = placed_order(seller_id=me, order_id=order_id, payment_method=method)
    invoice = await payments_service.issue(late)  # checkout's order has not reached us yet
    invoice_id = invoice.data.invoice_id

    payment = await payments_service.wait_for_status(me, invoice_id, "failed")
    assert [(a["reason"], a["retryable"]) for a in payment["attempts"]] == [
        ("card_unavailable", True)
    ]

    await payments_service.publish("orders.placed", late)
    # The retry may overtake the card on its way to the vault: the charge waits a bounded while.
    assert (await payments_service.retry(me, invoice_id)).status_code == 202
    payment = await payments_service.wait_for_status(me, invoice_id, "succeeded")
    assert [a["status"] for a in payment["attempts"]] == ["failed", "succeeded"]
    assert [c["status"] for c in await payments_service.charges(invoice_id)] == ["succeeded"]


async def test_the_payments_api_checks_its_input(payments_service: PaymentsUnderTest) -> None:
    missing = await payments_service.http.get("/v1/payments", headers=bearer("seller-x"))
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "validation_error"


async def test_a_card_already_in_the_vault_is_charged_with_no_write_between_insert_and_outcome(
    payments_service: PaymentsUnderTest,
) -> None:
    me = seller()
    order = await payments_service.place(me, "tok_visa")
    settings = payments_service.settings
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    database = client[settings.mongodb_database]
    try:
        # Checkout's order precedes its invoice by far: the card is in the vault first.
        async def stored() -> bool:
            return await database["card_vault"].find_one({"_id": order.data.order_id}) is not None

        await wait_until(stored, equals=True, timeout=30)
        invoice = await payments_service.issue(order)
        invoice_id = invoice.data.invoice_id
        await payments_service.wait_for_status(me, invoice_id, "succeeded")

        payment = await database["payments"].find_one({"_id": invoice_id})
        assert payment is not None
        # Two versions: the insert, already saying the charge was sent, and the outcome with
        # its event. No write marked the send in between.
        assert payment["version"] == 2
        [attempt] = payment["attempts"]
        assert attempt["status"] == "succeeded"
        assert attempt["sent_at"] is not None
        assert len(await payments_service.charges(invoice_id)) == 1
    finally:
        await client.close()

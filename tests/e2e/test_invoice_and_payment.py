"""Accept, invoice, charge: the card is charged once, the invoice is paid, the buyer is told."""

from __future__ import annotations

import pytest

from .support import Buyer, Seller, card, error_code

pytestmark = pytest.mark.integration


async def test_an_accepted_order_is_invoiced_charged_once_and_shown_paid(seller: Seller) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(buyer)  # 4 x 12.50 + 2 x 8.00 on tok_visa
    order_id = order["order_id"]

    accepted = await seller.accept(order_id)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "approved"

    draft = await seller.preview(order_id)
    assert draft["status"] == "draft"
    assert (draft["subtotal"], draft["shipping_cost"], draft["total"]) == (
        "66.00",
        "15.00",
        "81.00",
    )
    assert draft["payment_method"] == {"type": "credit_card", "brand": "visa", "last4": "4242"}

    confirmed = await seller.confirm(draft["invoice_id"])
    invoice_id = confirmed["invoice_id"]
    assert confirmed["status"] == "issued"
    assert confirmed["number"] == "INV-000001"  # the seller's first invoice

    paid = await seller.invoice_once(invoice_id, "paid")
    assert paid["payment_status"] == "paid"
    charges = await seller.stack.charges(invoice_id)
    assert [(c["status"], c["amount"], c["currency"]) for c in charges] == [
        ("succeeded", "81.00", "USD")
    ]

    row = await seller.row_once(order_id, payment_status="paid")
    assert row["status"] == "approved"
    assert row["invoice"] == {
        "invoice_id": invoice_id,
        "number": "INV-000001",
        "status": "paid",
        "url": confirmed["url"],
    }
    document = await seller.http.get(confirmed["url"], headers=seller.headers)
    assert document.status_code == 200
    assert "INV-000001" in document.text

    inbox = seller.stack.inbox
    issued = await inbox.wait_for(buyer.email, "Invoice INV-000001 from Juniper Pottery")
    assert confirmed["url"] in issued.text
    receipt = await inbox.wait_for(buyer.email, "Receipt: invoice INV-000001")
    assert "81.00 USD" in receipt.text
    await inbox.wait_for(buyer.email, f"Your order {order_id} from Juniper Pottery was accepted")
    # Confirming again is the same invoice and charges nothing more.
    assert (await seller.confirm(invoice_id))["number"] == "INV-000001"
    assert len(await seller.stack.charges(invoice_id)) == 1


async def test_a_declined_card_fails_the_payment_until_the_seller_retries(seller: Seller) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(buyer, payment_method=card("tok_decline_once", "0341"))
    order_id = order["order_id"]
    assert (await seller.accept(order_id)).status_code == 200
    confirmed = await seller.invoice_and_confirm(order_id)
    invoice_id, number = confirmed["invoice_id"], confirmed["number"]

    failed = await seller.invoice_once(invoice_id, "payment_failed")
    assert failed["payment_status"] == "failed"
    assert failed["payment_failure"]["reason"] == "card_declined"
    row = await seller.row_once(order_id, payment_status="failed")
    assert row["invoice"]["status"] == "payment_failed"
    notice = await seller.stack.inbox.wait_for(
        buyer.email, f"Payment for invoice {number} from Juniper Pottery did not go through"
    )
    assert "your card was declined" in notice.text
    payment = await seller.payment(invoice_id)
    assert [(a["attempt"], a["status"], a["reason"]) for a in payment["attempts"]] == [
        (1, "failed", "card_declined")
    ]

    retried = await seller.retry_payment(invoice_id)
    assert retried.status_code == 202, retried.text

    await seller.invoice_once(invoice_id, "paid")
    await seller.row_once(order_id, payment_status="paid")
    charges = await seller.stack.charges(invoice_id)
    assert sorted(c["status"] for c in charges) == ["failed", "succeeded"]
    payment = await seller.payment(invoice_id)
    assert [(a["attempt"], a["status"]) for a in payment["attempts"]] == [
        (1, "failed"),
        (2, "succeeded"),
    ]
    await seller.stack.inbox.wait_for(buyer.email, f"Receipt: invoice {number}")
    # Paid: nothing left to retry.
    assert error_code(await seller.retry_payment(invoice_id)) == (409, "invalid_state")

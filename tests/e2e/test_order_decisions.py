"""The seller's decisions on an order (help article: accept, reject, ungated brands, cancel)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .support import SHIPPING, Buyer, Seller, error_code

pytestmark = pytest.mark.integration


async def test_a_rejected_order_emails_the_buyer_the_reason_and_the_sellers_message(
    seller: Seller,
) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(buyer)
    order_id = order["order_id"]

    rejected = await seller.reject(order_id, "out_of_stock", "The glazed mugs are back in May.")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"

    mail = await seller.stack.inbox.wait_for(
        buyer.email, f"Your order {order_id} from Juniper Pottery was declined"
    )
    assert "because some items are out of stock" in mail.text
    assert "The glazed mugs are back in May." in mail.text
    assert (await seller.row(order_id))["status"] == "rejected"
    # A rejected order cannot be invoiced.
    preview = await seller.post(
        "invoicing", f"/v1/orders/{order_id}/invoice/preview", {"shipping": SHIPPING}
    )
    assert error_code(preview) in {(409, "order_not_invoiceable"), (404, "not_found")}


async def test_an_ungated_seller_accepts_new_buyers_as_new_or_existing_customers(
    seller: Seller,
) -> None:
    await seller.set_gated(False)
    newcomer = Buyer.new("Grace Newcomer", "Harbour Goods")
    first = await seller.receives_order(newcomer)

    # No relationship yet: the portal must ask for a customer choice.
    assert error_code(await seller.accept(first["order_id"])) == (409, "customer_required")
    accepted = await seller.accept(
        first["order_id"],
        {"customer": {"create": {"name": "Harbour Goods", "email": newcomer.email}}},
    )
    assert accepted.status_code == 200, accepted.text
    customer_id = accepted.json()["customer_id"]
    assert accepted.json()["status"] == "approved"
    customer = await seller.ok("orders", "GET", f"/v1/customers/{customer_id}")
    assert customer["buyer_ids"] == [newcomer.id]

    # From then on the buyer is linked: the next order is accepted without asking.
    second = await seller.receives_order(newcomer)
    again = await seller.accept(second["order_id"])
    assert again.status_code == 200, again.text
    assert again.json()["customer_id"] == customer_id

    # A buyer from a company the seller already has as a customer: associate.
    existing = await seller.create_customer("Maple & Co", "purchasing@maple.example")
    colleague = Buyer.new("Ada Colleague", "Maple & Co")
    third = await seller.receives_order(colleague)
    associated = await seller.accept(
        third["order_id"], {"customer": {"associate": existing["customer_id"]}}
    )
    assert associated.status_code == 200, associated.text
    assert associated.json()["customer_id"] == existing["customer_id"]
    customer = await seller.ok("orders", "GET", f"/v1/customers/{existing['customer_id']}")
    assert customer["buyer_ids"] == [colleague.id]


async def test_a_gated_seller_never_sees_an_unknown_buyers_order_pending(seller: Seller) -> None:
    assert (await seller.ok("orders", "GET", "/v1/seller/settings")) == {
        "buyer_access_requires_approval": True,
        "pending_order_expiry_days": 14,
    }
    stranger = Buyer.new("Sam Stranger", "Unknown Traders")
    order = await seller.receives_order(stranger, status="rejected")

    assert order["rejection"]["reason"] == "buyer_not_approved"
    assert (await seller.row(order["order_id"]))["status"] == "rejected"
    mail = await seller.stack.inbox.wait_for(
        stranger.email, f"Your order {order['order_id']} from Juniper Pottery was declined"
    )
    assert "this seller only sells to approved buyers" in mail.text


async def test_an_accepted_order_can_be_cancelled_until_it_is_invoiced(
    new_seller: Callable[[], Seller],
) -> None:
    seller = new_seller()
    buyer = Buyer.new()
    await seller.knows(buyer)
    changed_mind = await seller.receives_order(buyer)
    invoiced = await seller.receives_order(buyer)
    for order in (changed_mind, invoiced):
        assert (await seller.accept(order["order_id"])).status_code == 200

    cancelled = await seller.cancel(changed_mind["order_id"], "The kiln broke; sorry.")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    mail = await seller.stack.inbox.wait_for(
        buyer.email, f"Your order {changed_mind['order_id']} from Juniper Pottery was cancelled"
    )
    assert "The kiln broke; sorry." in mail.text
    assert error_code(await seller.cancel(changed_mind["order_id"], "again")) == (
        409,
        "invalid_state",
    )

    confirmed = await seller.invoice_and_confirm(invoiced["order_id"])
    await seller.row_once(invoiced["order_id"], invoice={**confirmed, "status": "paid"})
    refused = await seller.cancel(invoiced["order_id"], "too late")
    assert error_code(refused) == (409, "invalid_state")
    assert (await seller.row(invoiced["order_id"]))["status"] == "approved"


async def test_another_seller_sees_none_of_it(new_seller: Callable[[], Seller]) -> None:
    owner, other = new_seller(), new_seller()
    buyer = Buyer.new()
    await owner.knows(buyer)
    order = await owner.receives_order(buyer)
    order_id = order["order_id"]
    assert (await owner.accept(order_id)).status_code == 200
    invoice_id = (await owner.invoice_and_confirm(order_id))["invoice_id"]
    await owner.invoice_once(invoice_id, "paid")

    assert error_code(await other.get("orders", f"/v1/orders/{order_id}")) == (404, "not_found")
    assert error_code(await other.accept(order_id)) == (404, "not_found")
    assert error_code(await other.cancel(order_id, "mine now")) == (404, "not_found")
    assert error_code(await other.get("invoicing", f"/v1/invoices/{invoice_id}")) == (
        404,
        "not_found",
    )
    assert error_code(await other.post("invoicing", f"/v1/invoices/{invoice_id}/confirm")) == (
        404,
        "not_found",
    )
    assert error_code(await other.get("payments", "/v1/payments", invoice_id=invoice_id)) == (
        404,
        "not_found",
    )
    assert error_code(await other.retry_payment(invoice_id)) == (404, "not_found")
    assert (await other.ok("orders", "GET", "/v1/orders"))["total_count"] == 0
    assert (await other.ok("invoicing", "GET", "/v1/invoices", {"order_id": order_id}))[
        "items"
    ] == []
    # The owner still sees it all.
    assert (await owner.payment(invoice_id))["status"] == "succeeded"
    # And nobody without a token sees anything.
    anonymous = await owner.http.get(owner.stack.url("orders") + f"/v1/orders/{order_id}")
    assert error_code(anonymous) == (401, "unauthorized")

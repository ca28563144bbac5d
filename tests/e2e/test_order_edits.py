"""Editing an order before it is invoiced (help article: split, update quantities, delete an item)."""

from __future__ import annotations

import pytest

from .support import Buyer, Seller, card, item

pytestmark = pytest.mark.integration


async def test_a_split_order_is_edited_accepted_invoiced_and_charged_on_its_own(
    seller: Seller,
) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(
        buyer,
        items=[item("MUG-1", "12.50", 4), item("TEA-2", "8.00", 2), item("VASE-3", "45.00", 1)],
        payment_method=card("tok_visa", "4242"),
    )
    parent_id = order["order_id"]

    # The vase is not ready to ship: split it (and the tea) off into a new order.
    split = await seller.split(parent_id, ["L2", "L3"])
    assert split.status_code == 201, split.text
    child = split.json()
    child_id = child["order_id"]
    assert child["status"] == "pending"
    assert child["split_from"] == parent_id
    assert [(line["sku"], line["quantity"]) for line in child["items"]] == [
        ("TEA-2", 2),
        ("VASE-3", 1),
    ]
    parent = await seller.ok("orders", "GET", f"/v1/orders/{parent_id}")
    assert parent["split_into"] == [child_id]
    assert [line["sku"] for line in parent["items"]] == ["MUG-1"]
    assert parent["total"] == "50.00"

    # Each order is edited and accepted on its own.
    edited_parent = await seller.change_quantities(parent_id, {"L1": 6})
    assert edited_parent.status_code == 200, edited_parent.text
    assert edited_parent.json()["total"] == "75.00"
    edited_child = await seller.remove_items(child_id, ["L2"])
    assert edited_child.status_code == 200, edited_child.text
    assert edited_child.json()["total"] == "45.00"
    for order_id in (child_id, parent_id):
        accepted = await seller.accept(order_id)
        assert accepted.status_code == 200, accepted.text

    # Invoiced separately, child first: numbers follow the order of confirmation.
    child_invoice = await seller.invoice_and_confirm(child_id)
    parent_invoice = await seller.invoice_and_confirm(parent_id)
    assert (child_invoice["number"], parent_invoice["number"]) == ("INV-000001", "INV-000002")

    for order_id, invoice, amount in (
        (child_id, child_invoice, "60.00"),
        (parent_id, parent_invoice, "90.00"),
    ):
        await seller.invoice_once(invoice["invoice_id"], "paid")
        charges = await seller.stack.charges(invoice["invoice_id"])
        assert [(c["status"], c["amount"]) for c in charges] == [("succeeded", amount)]
        row = await seller.row_once(order_id, payment_status="paid")
        assert row["invoice"]["number"] == invoice["number"]
    # The new order is charged to the card the buyer placed the original order with.
    assert (await seller.payment(child_invoice["invoice_id"]))["card"] == {
        "brand": "visa",
        "last4": "4242",
    }
    await seller.stack.inbox.wait_for(
        buyer.email, f"Your order {parent_id} from Juniper Pottery was split"
    )


async def test_quantities_and_removed_items_carry_exact_totals_into_the_invoice(
    seller: Seller,
) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(
        buyer,
        items=[
            item("MUG-1", "19.99", 3),
            item("TEA-2", "0.10", 7),
            item("SPOON-3", "4.35", 1),
            item("VASE-4", "33.33", 2),
        ],
        shipping_fee="9.95",
        payment_method={"type": "net_terms", "days": 30},
    )
    order_id = order["order_id"]
    assert (order["subtotal"], order["total"]) == ("131.68", "141.63")

    # While pending: more mugs, fewer tea tins, the spoon removed.
    changed = await seller.change_quantities(order_id, {"L1": 5, "L2": 3})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["subtotal"], changed.json()["total"]) == ("171.26", "181.21")
    removed = await seller.remove_items(order_id, ["L3"])
    assert removed.status_code == 200, removed.text
    assert (removed.json()["subtotal"], removed.json()["total"]) == ("166.91", "176.86")

    accepted = await seller.accept(order_id)
    assert accepted.status_code == 200, accepted.text
    assert (await seller.row(order_id))["total"] == "176.86"

    shipping = {
        "carrier": "FedEx",
        "tracking_number": "7489 2210 0093",
        "shipped_at": "2026-03-02",
        "shipping_cost": "12.05",
    }
    draft = await seller.preview(order_id, shipping)
    assert [(line["sku"], line["quantity"], line["line_total"]) for line in draft["lines"]] == [
        ("MUG-1", 5, "99.95"),
        ("TEA-2", 3, "0.30"),
        ("VASE-4", 2, "66.66"),
    ]
    assert (draft["subtotal"], draft["shipping_cost"], draft["total"]) == (
        "166.91",
        "12.05",
        "178.96",
    )
    assert draft["due_date"] == "2026-04-01"  # net 30 from shipping
    confirmed = await seller.confirm(draft["invoice_id"])
    invoice = await seller.invoice_once(confirmed["invoice_id"], "issued")
    assert invoice["total"] == "178.96"
    # Net terms: nobody charges a card; the order waits for the buyer's payment.
    assert await seller.stack.charges(confirmed["invoice_id"]) == []
    row = await seller.row_once(order_id, invoice={**confirmed, "status": "issued"})
    assert row["payment_status"] == "pending"
    # Once invoiced, the items are final.
    late = await seller.change_quantities(order_id, {"L1": 1})
    assert (late.status_code, late.json()["error"]["code"]) == (409, "invalid_state")

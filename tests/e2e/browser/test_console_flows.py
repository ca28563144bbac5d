"""The help article, clicked through in a real browser; each flow ends in the buyer's inbox.

A buyer places orders on Kafka as checkout does (the only step no seller clicks); everything
else is the seller at the console. Each screen is screenshotted and checked with axe-core.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from juniper_shared.auth import issue_token

from ...support.stack import JWT_SECRET
from ..support import Buyer, Seller, card, item
from .conftest import DEMO_SELLER
from .support import Browser

pytestmark = pytest.mark.integration

THREE_ITEMS = [
    item("MUG-1", "12.50", 4, "Stoneware mug"),
    item("TEA-2", "8.00", 2, "Green tea tin"),
    item("VASE-3", "45.00", 1, "Tall vase"),
]


async def test_sign_in_and_the_all_orders_table(
    new_seller: Callable[[], Seller], browser: Browser
) -> None:
    someone = new_seller()
    demo = Seller(someone.stack, someone.http, DEMO_SELLER)
    ada, sam = Buyer.new("Ada Buyer", "Maple & Co"), Buyer.new("Sam Stranger", "Unknown Traders")
    await demo.knows(ada)
    await demo.knows(sam)
    first = await demo.receives_order(ada, items=THREE_ITEMS)
    second = await demo.receives_order(sam)
    await demo.accept(second["order_id"])

    browser.driver.delete_all_cookies()
    browser.open("/orders")
    browser.wait_for(lambda: browser.title.startswith("Sign in"), "the sign-in page")
    browser.screen("sign-in")
    browser.click(f"Sign in as {DEMO_SELLER}")

    browser.wait_text("All Orders")
    assert browser.title.startswith("All Orders")
    table = browser.section("All Orders")
    # Newest first, with buyer, status and the total in the order's currency.
    assert table.index(second["order_id"]) < table.index(first["order_id"])
    assert "$111.00" in table  # 4 x 12.50 + 2 x 8.00 + 45.00, no shipping fee
    browser.screen("orders")

    browser.choose("Status", "Approved")
    browser.click("Show orders")
    browser.wait_for(lambda: first["order_id"] not in browser.section("All Orders"), "filter")
    assert second["order_id"] in browser.section("All Orders")

    browser.choose("Status", "All statuses")
    browser.fill("Order ID or buyer", "Maple")
    browser.click("Show orders")
    browser.wait_for(lambda: second["order_id"] not in browser.section("All Orders"), "search")
    assert first["order_id"] in browser.section("All Orders")
    browser.fill("Order ID or buyer", second["order_id"])
    browser.click("Show orders")
    browser.wait_text(f"1 order matching “{second['order_id']}”")

    # The article's flow: the order page opens from its id; the buyer heard of the accept.
    browser.click(second["order_id"])
    browser.wait_text("Order Information")
    mail = await demo.stack.inbox.wait_for(sam.email, "was accepted")
    assert second["order_id"] in mail.subject


async def test_accept(seller: Seller, browser: Browser) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(buyer)
    order_id = order["order_id"]

    browser.open("/orders")
    browser.click(order_id)
    browser.wait_text("Shipping & Billing Information")
    assert browser.title.startswith(f"Order {order_id}")
    browser.screen("order-details")
    browser.press_with_keyboard("Accept")

    browser.wait_text("Order accepted: it is approved.")
    assert "Approved" in browser.section("Order Information")
    # Live: the email the buyer was sent shows up without a reload.
    browser.wait_for(lambda: "Order accepted" in browser.section("Emails to the buyer"), "email")
    mail = await seller.stack.inbox.wait_for(
        buyer.email, f"Your order {order_id} from Juniper Pottery was accepted"
    )
    assert order_id in mail.text


async def test_accept_with_a_new_customer(seller: Seller, browser: Browser) -> None:
    await seller.set_gated(False)
    stranger = Buyer.new("Sam Stranger", "Unknown Traders")
    order = await seller.receives_order(stranger)
    order_id = order["order_id"]

    browser.open(f"/orders/{order_id}")
    browser.click("Accept")
    browser.wait_text("create or associate a customer")
    browser.screen("accept-customer")
    assert browser.field("Customer email").get_attribute("value") == stranger.email
    browser.fill("Customer name", "Unknown Traders Ltd")
    browser.click("Create customer and accept")

    browser.wait_text("Order accepted: it is approved.")
    info = browser.section("Order Information")
    assert "Approved" in info and "None yet" not in info  # linked to the new customer
    await seller.stack.inbox.wait_for(
        stranger.email, f"Your order {order_id} from Juniper Pottery was accepted"
    )


async def test_accept_associating_an_existing_customer(seller: Seller, browser: Browser) -> None:
    await seller.set_gated(False)
    customer = await seller.create_customer("Harbour Retail", "buying@harbour.example")
    stranger = Buyer.new("Sam Stranger", "Harbour Retail")
    order = await seller.receives_order(stranger)
    order_id = order["order_id"]

    browser.open(f"/orders/{order_id}")
    browser.click("Accept")
    browser.wait_text("Associate an existing customer")
    browser.choose("Customer", "Harbour Retail (buying@harbour.example)")
    browser.click("Associate and accept")

    browser.wait_text("Order accepted: it is approved.")
    assert customer["customer_id"] in browser.section("Order Information")
    await seller.stack.inbox.wait_for(
        stranger.email, f"Your order {order_id} from Juniper Pottery was accepted"
    )


async def test_reject(seller: Seller, browser: Browser) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(buyer)
    order_id = order["order_id"]

    browser.open(f"/orders/{order_id}")
    browser.click("Reject")
    browser.choose("Reason", "Out of stock")
    browser.fill("Message to the buyer", "The glazed mugs are back in May.")
    browser.screen("reject")
    browser.click("Reject order")

    browser.wait_text("Order rejected; the buyer is emailed.")
    assert "Out of stock" in browser.section("Order Information")
    mail = await seller.stack.inbox.wait_for(
        buyer.email, f"Your order {order_id} from Juniper Pottery was declined"
    )
    assert "The glazed mugs are back in May." in mail.text


async def test_split(seller: Seller, browser: Browser) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(buyer, items=THREE_ITEMS)
    order_id = order["order_id"]

    browser.open(f"/orders/{order_id}")
    browser.wait_text("Order Items")
    browser.tick("Select Green tea tin")
    browser.tick("Select Tall vase")
    browser.click("Split from Order")
    browser.wait_text("Split these items into a new order?")
    dialog = browser.section("Split these items into a new order?")
    assert "2 \u00d7 Green tea tin" in dialog and "1 \u00d7 Tall vase" in dialog
    browser.screen("split")
    browser.click("Split")

    browser.wait_text("New order created from the split")
    items = browser.section("Order Items")
    assert "Stoneware mug" in items and "Tall vase" not in items
    assert "$50.00" in browser.section("Order Items")  # 4 x 12.50 left on the original
    browser.click(f"Open order {order_id}-1")
    browser.wait_text(f"Order {order_id}-1")
    items = browser.section("Order Items")
    assert "Green tea tin" in items and "Tall vase" in items and "Stoneware mug" not in items
    await seller.stack.inbox.wait_for(
        buyer.email, f"Your order {order_id} from Juniper Pottery was split"
    )


async def test_change_quantities_and_delete_items(seller: Seller, browser: Browser) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(buyer, items=THREE_ITEMS)
    order_id = order["order_id"]

    browser.open(f"/orders/{order_id}")
    browser.wait_text("Order Items")
    # The Update button appears once the quantity changes.
    update = browser.driver.find_element(
        "css selector", "[aria-label='Update quantity of Stoneware mug']"
    )
    assert not update.is_displayed()
    browser.fill("Quantity of Stoneware mug", "0")
    browser.click("Update quantity of Stoneware mug")
    browser.wait_text("Enter a whole number, 1 or more.")

    browser.fill("Quantity of Stoneware mug", "10")
    browser.click("Update quantity of Stoneware mug")
    browser.wait_text("Quantity updated; totals recomputed.")
    assert "$186.00" in browser.section("Order Items")  # 10 x 12.50 + 16.00 + 45.00

    browser.tick("Select Tall vase")
    browser.click("Delete selected items")
    browser.wait_text("Items deleted; totals recomputed.")
    items = browser.section("Order Items")
    assert "Tall vase" not in items and "$141.00" in items

    # An API refusal is shown in words beside the control that caused it.
    browser.tick("Select Stoneware mug")
    browser.tick("Select Green tea tin")
    browser.click("Delete selected items")
    browser.wait_text("an order cannot be left with no items; reject it instead")
    # The address bar keeps the order's page, not the form's address: reloading is safe.
    assert urlsplit(browser.driver.current_url).path == f"/orders/{order_id}"

    browser.click("Accept")
    browser.wait_text("Order accepted: it is approved.")
    mail = await seller.stack.inbox.wait_for(
        buyer.email, f"Your order {order_id} from Juniper Pottery was accepted"
    )
    assert "141.00" in mail.text


async def test_cancel(seller: Seller, browser: Browser) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(buyer)
    order_id = order["order_id"]
    await seller.accept(order_id)

    browser.open(f"/orders/{order_id}")
    browser.click("Cancel order")
    browser.fill("Message to the buyer", "The kiln broke; sorry.")
    browser.double_click("Cancel this order")  # an impatient seller: it acts once

    browser.wait_text("Order cancelled; the buyer is emailed.")
    assert "Cancelled" in browser.section("Order Information")
    history = (await seller.order_once(order_id, status="cancelled"))["history"]
    assert [entry["type"] for entry in history].count("cancelled") == 1
    mail = await seller.stack.inbox.wait_for(
        buyer.email, f"Your order {order_id} from Juniper Pottery was cancelled"
    )
    assert "The kiln broke; sorry." in mail.text


async def invoice_through_the_shipping_tab(browser: Browser, order_id: str, total: str) -> None:
    browser.open(f"/orders/{order_id}")
    browser.click("Shipping")
    browser.wait_text("Shipping details")
    assert browser.title.startswith("Shipping")
    browser.screen("shipping")
    browser.fill("Carrier", "UPS")
    browser.click("Create Invoice")
    browser.wait_text("Enter the tracking number.")  # beside the field left empty
    browser.fill("Tracking number", "1Z999AA10123456784")
    browser.fill("Shipping cost (USD)", "15.00")
    browser.click("Create Invoice")

    browser.wait_text("Invoice Preview")
    assert browser.title.startswith("Invoice preview")
    preview = browser.text()
    assert total in preview and "$15.00" in preview and "Due date" in preview
    browser.screen("invoice-preview")
    browser.click("Confirm")
    browser.wait_text("Invoice confirmed and issued.")


async def test_invoice_paid(seller: Seller, browser: Browser) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(buyer)
    order_id = order["order_id"]
    await seller.accept(order_id)

    await invoice_through_the_shipping_tab(browser, order_id, "$81.00")  # 66.00 + 15.00
    browser.wait_for(lambda: "Paid" in browser.section("Invoice INV-000001"), "paid")
    browser.screen("invoice-paid")
    browser.click("View invoice INV-000001")
    browser.wait_for(lambda: "INV-000001" in browser.driver.page_source, "the invoice document")
    assert "Juniper Pottery" in browser.driver.find_element("tag name", "body").text

    browser.open("/orders")
    row = browser.section("All Orders")
    assert "Invoice INV-000001" in row and "Paid" in row
    browser.screen("orders-invoiced")
    await seller.stack.inbox.wait_for(buyer.email, "Invoice INV-000001 from Juniper Pottery")
    receipt = await seller.stack.inbox.wait_for(buyer.email, "Receipt: invoice INV-000001")
    assert "81.00" in receipt.text


async def test_payment_failed_then_retry(seller: Seller, browser: Browser) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(buyer, payment_method=card("tok_decline_once", "0341"))
    order_id = order["order_id"]
    await seller.accept(order_id)

    await invoice_through_the_shipping_tab(browser, order_id, "$81.00")
    browser.wait_for(lambda: "Retry payment" in browser.text(), "the Retry payment button")
    assert "Payment failed" in browser.section("Invoice INV-000001")
    browser.screen("payment-failed")
    await seller.stack.inbox.wait_for(
        buyer.email, "Payment for invoice INV-000001 from Juniper Pottery did not go through"
    )

    browser.click("Retry payment")
    browser.wait_for(lambda: "Paid" in browser.section("Invoice INV-000001"), "paid on retry")
    assert "Attempt 2: Succeeded" in browser.section("Invoice INV-000001")
    await seller.stack.inbox.wait_for(buyer.email, "Receipt: invoice INV-000001")


async def test_settings_and_phone_width(seller: Seller, browser: Browser) -> None:
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(buyer, items=THREE_ITEMS)

    browser.open("/settings")
    browser.wait_text("Buyer Access Requires Approval")
    assert browser.field("Buyer Access Requires Approval").is_selected()  # gated by default
    browser.screen("settings")

    browser.driver.set_window_size(390, 1000)
    try:
        browser.open(f"/orders/{order['order_id']}")
        browser.wait_text("Order Items")
        overflow = browser.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page scrolls sideways by {overflow}px at phone width"
        browser.screen("order-details-phone")
    finally:
        browser.driver.set_window_size(1280, 1000)


async def test_double_submit_and_stale_page_act_once(seller: Seller, browser: Browser) -> None:
    """The forms as a double click or an old tab sends them: one accept, one email."""
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(buyer)
    order_id = order["order_id"]
    cookies = {"jm_seller_token": issue_token(seller.seller_id, JWT_SECRET)}
    form = {"version": str(order["version"])}
    async with httpx.AsyncClient(base_url=browser.base_url, cookies=cookies, timeout=15) as http:
        await double_submit_then_stale(seller, http, order_id, form)
    await seller.stack.inbox.wait_for(buyer.email, "was accepted")


async def double_submit_then_stale(
    seller: Seller, http: httpx.AsyncClient, order_id: str, form: dict[str, str]
) -> None:

    first = await http.post(f"/orders/{order_id}/accept", data=form)
    second = await http.post(f"/orders/{order_id}/accept", data=form)
    assert (first.status_code, second.status_code) == (303, 303)
    accepted = await seller.order_once(order_id, status="approved")
    assert [entry["type"] for entry in accepted["history"]].count("accepted") == 1

    stale = await http.post(f"/orders/{order_id}/cancel", data={**form, "message": "old tab"})
    assert stale.status_code == 412
    assert "This order changed since the page was shown" in stale.text
    assert (await seller.order_once(order_id, status="approved"))["version"] == accepted["version"]

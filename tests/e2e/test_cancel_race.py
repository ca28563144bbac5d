"""A cancel racing a confirm never leaves a cancelled order invoiced and charged.

Each service decides from its own, eventually updated copy of the other's state, so a cancel
at orders and a confirm at invoicing can both succeed in the window between. The system then
compensates: invoicing voids the invoice (keeping its number), payments charges nothing more
and refunds what was charged, the All Orders row shows the invoice void, the buyer is told.

The window is opened on purpose: this module runs its own system whose invoicing applies
`orders.events` a few seconds late (`INVOICING_ORDERS_EVENTS_LAG_SECONDS`, test-only), so a
confirm sent right after the cancel always reaches invoicing before the cancel does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from juniper_testkit import wait_until

from .support import WAIT, Buyer, Inbox, Seller, Stack, error_code

pytestmark = pytest.mark.integration

LAG_SECONDS = 3.0
"""How late invoicing hears of orders: far longer than a confirm takes, so the race is won."""


@pytest.fixture(scope="module")
async def stack(
    infra: Any, inbox: Inbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """This module's own system (the session's has no lag), overriding the `stack` fixture."""
    system = Stack.plan(
        kafka_bootstrap=infra.kafka_bootstrap,
        mongodb_url=infra.mongodb_url,
        inbox=inbox,
        log_dir=tmp_path_factory.mktemp("e2e-race-logs"),
    )
    system.processes["invoicing"].env["INVOICING_ORDERS_EVENTS_LAG_SECONDS"] = str(LAG_SECONDS)
    try:
        await system.start()
    except BaseException as error:
        await system.stop()
        pytest.fail(f"the system did not start: {error}\n{system.log_tails()}", pytrace=False)
    try:
        yield system
    finally:
        await system.stop()


async def approved_and_previewed(seller: Seller, buyer: Buyer) -> tuple[str, dict[str, Any]]:
    await seller.knows(buyer)
    order_id = (await seller.receives_order(buyer))["order_id"]  # 81.00 USD on tok_visa
    accepted = await seller.accept(order_id)
    assert accepted.status_code == 200, accepted.text
    return order_id, await seller.preview(order_id)


async def settled_payment(seller: Seller, invoice_id: str) -> dict[str, Any]:
    """The payment once payments has heard of the void and finished what it started."""

    async def settled() -> bool:
        payment = await seller.payment(invoice_id)
        refund = payment["refund"]
        return (
            payment["voided_at"] is not None
            and all(attempt["status"] != "pending" for attempt in payment["attempts"])
            and (refund is None or refund["status"] == "succeeded")
        )

    await wait_until(settled, equals=True, timeout=WAIT, interval=0.3)
    return await seller.payment(invoice_id)


async def assert_compensated(
    seller: Seller, buyer: Buyer, order_id: str, confirmed: dict[str, Any]
) -> None:
    """What the seller and the buyer see once the system has compensated the race."""
    invoice_id, number = confirmed["invoice_id"], confirmed["number"]
    void = await seller.invoice_once(invoice_id, "void")
    assert void["number"] == number  # numbering stays gapless: a void invoice is a record

    payment = await settled_payment(seller, invoice_id)
    charges = await seller.stack.charges(invoice_id)
    # Never a kept charge: none succeeded, or the one that did is refunded in full.
    assert [c["status"] for c in charges if c["status"] != "failed"] in ([], ["refunded"])
    refunded = [c for c in charges if c["status"] == "refunded"]
    if refunded:
        assert refunded[0]["refunded_amount"] == refunded[0]["amount"] == "81.00"
        assert payment["refund"]["charge_ref"] == refunded[0]["charge_id"]

    async def invoice_payment_status() -> str:
        return str(
            (await seller.ok("invoicing", "GET", f"/v1/invoices/{invoice_id}"))["payment_status"]
        )

    expected = "refunded" if refunded else "none"
    await wait_until(invoice_payment_status, equals=expected, timeout=WAIT, interval=0.3)
    assert (await seller.ok("invoicing", "GET", f"/v1/invoices/{invoice_id}"))["status"] == "void"

    row = await seller.row_once(
        order_id,
        status="cancelled",
        invoice={
            "invoice_id": invoice_id,
            "number": number,
            "status": "void",
            "url": confirmed["url"],
        },
    )
    assert row["payment_status"] in ("pending", "paid")  # as it was: orders does not read refunds
    details = await seller.ok("orders", "GET", f"/v1/orders/{order_id}")
    assert [e["type"] for e in details["history"]].count("invoice_voided") == 1

    email = await seller.stack.inbox.wait_for(
        buyer.email, f"Invoice {number} from Juniper Pottery was cancelled"
    )
    assert f"for order {order_id} was cancelled" in email.text
    assert "If your card was charged for this invoice, the amount is refunded to it." in email.text


async def test_a_confirm_right_after_a_cancel_ends_void_and_refunded(seller: Seller) -> None:
    buyer = Buyer.new()
    order_id, draft = await approved_and_previewed(seller, buyer)

    cancelled = await seller.cancel(order_id, "Out of clay")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    # Invoicing has not heard of the cancel yet: the confirm goes through (the reported bug).
    confirmed = await seller.confirm(draft["invoice_id"])
    assert (confirmed["status"], confirmed["number"]) == ("issued", "INV-000001")

    await assert_compensated(seller, buyer, order_id, confirmed)
    # Once invoicing knows, confirming again is refused and charges nothing.
    again = await seller.post("invoicing", f"/v1/invoices/{draft['invoice_id']}/confirm")
    assert error_code(again) == (409, "order_not_invoiceable")


async def test_a_cancel_right_after_a_confirm_is_refused_or_compensated(seller: Seller) -> None:
    buyer = Buyer.new()
    order_id, draft = await approved_and_previewed(seller, buyer)

    confirmed = await seller.confirm(draft["invoice_id"])
    cancelled = await seller.cancel(order_id, "Out of clay")
    if cancelled.status_code == 200:
        # Orders had not heard of the invoice yet: the same compensation applies.
        await assert_compensated(seller, buyer, order_id, confirmed)
    else:
        assert error_code(cancelled) == (409, "invalid_state")
        paid = await seller.invoice_once(confirmed["invoice_id"], "paid")
        assert paid["payment_status"] == "paid"


async def test_a_cancel_once_orders_knows_the_invoice_is_refused_and_the_charge_kept(
    seller: Seller,
) -> None:
    buyer = Buyer.new()
    order_id, draft = await approved_and_previewed(seller, buyer)
    confirmed = await seller.confirm(draft["invoice_id"])

    async def orders_knows_the_invoice() -> bool:
        return (await seller.row(order_id))["invoice"] is not None

    await wait_until(orders_knows_the_invoice, equals=True, timeout=WAIT, interval=0.2)

    cancelled = await seller.cancel(order_id, "Out of clay")
    assert error_code(cancelled) == (409, "invalid_state")

    paid = await seller.invoice_once(confirmed["invoice_id"], "paid")
    assert paid["payment_status"] == "paid"
    charges = await seller.stack.charges(confirmed["invoice_id"])
    assert [(c["status"], c["amount"]) for c in charges] == [("succeeded", "81.00")]
    row = await seller.row_once(order_id, payment_status="paid")
    assert (row["status"], row["invoice"]["status"]) == ("approved", "paid")

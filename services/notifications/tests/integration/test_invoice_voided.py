"""The buyer is told when the invoice of a cancelled order is voided, once."""

from __future__ import annotations

from typing import Any

import pytest
from juniper_testkit import wait_until

from .test_emails_end_to_end import SELLER, text_and_html

pytestmark = pytest.mark.integration


async def test_the_buyer_is_emailed_once_that_the_invoice_is_cancelled_and_refunded(
    service: Any, smtp: Any, events: Any, snapshot: Any
) -> None:
    order = snapshot()
    issued = events.invoice_issued(order, number="INV-000009", card=True)
    voided = events.voided(order, number="INV-000009")
    # A later event on the same invoice (so the same partition) proves both copies were handled.
    sentinel = events.paid(order, number="INV-000009")
    await service.publish([issued])
    await service.publish([voided, voided])
    await service.publish([sentinel])
    await smtp.wait_for(3)

    [received] = smtp.by_message_id(voided)
    assert received.rcpt_tos == ["ada@example.com"]
    assert received.message["Subject"] == "Invoice INV-000009 from Juniper Pottery was cancelled"
    text, _ = text_and_html(received.message)
    assert f"for order {order.order_id} was cancelled" in text
    assert "If your card was charged for this invoice, the amount is refunded to it." in text

    async def listed() -> list[tuple[str, str]]:
        items = await service.notifications(SELLER, order.order_id)
        return [(item["template"], item["status"]) for item in items]

    # The outcome is stored just after the relay took the email: shortly "pending" before "sent".
    await wait_until(
        listed,
        equals=[
            ("invoice_issued", "sent"),
            ("invoice_voided", "sent"),
            ("invoice_paid", "sent"),
        ],
    )

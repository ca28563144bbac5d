"""The buyer's inbox on real Kafka, FerretDB and SMTP: every email once, none lost to an outage."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from juniper_shared.contracts.common import Buyer
from juniper_testkit import wait_until

pytestmark = pytest.mark.integration

SELLER = "seller-1"


def text_and_html(message: Any) -> tuple[str, str]:
    """Both parts, with the wire's CRLF line ends read as a mail client shows them."""
    return (
        message.get_body(("plain",)).get_content().replace("\r\n", "\n"),
        message.get_body(("html",)).get_content().replace("\r\n", "\n"),
    )


async def test_the_buyer_is_emailed_through_the_order_and_invoice_story(
    service: Any, smtp: Any, events: Any, snapshot: Any
) -> None:
    order = snapshot()
    declined = snapshot()
    story = [
        events.received(order),
        events.received(declined),
        events.rejected(declined, "outside_territory", "We only deliver in Oregon.\n<b>Sorry!</b>"),
        events.accepted(order),
        events.split(order, ["L2"]),
        events.invoice_issued(order, number="INV-000007", card=True),
        events.payment_failed(order, number="INV-000007"),
        events.paid(order, number="INV-000007"),
    ]
    await service.publish(story)
    await smtp.wait_for(6)

    rejected = smtp.by_message_id(story[2])
    assert len(rejected) == 1
    assert rejected[0].rcpt_tos == ["ada@example.com"]
    assert rejected[0].mail_from == "orders@junipermarket.test"
    message = rejected[0].message
    assert message["To"] == "Ada Buyer <ada@example.com>"
    assert message["From"] == "JuniperMarket <orders@junipermarket.test>"
    assert message["Subject"] == f"Your order {declined.order_id} from Juniper Pottery was declined"
    text, html = text_and_html(message)
    assert "because your address is outside the area this seller serves." in text
    assert "We only deliver in Oregon.\n<b>Sorry!</b>" in text
    assert "We only deliver in Oregon.\n&lt;b&gt;Sorry!&lt;/b&gt;" in html

    subjects = sorted(item.message["Subject"] for item in smtp.received)
    assert subjects == sorted(
        [
            f"Your order {declined.order_id} from Juniper Pottery was declined",
            f"Your order {order.order_id} from Juniper Pottery was accepted",
            f"Your order {order.order_id} from Juniper Pottery was split; "
            f"some items are now order {order.order_id}-S1",
            "Invoice INV-000007 from Juniper Pottery",
            "Payment for invoice INV-000007 from Juniper Pottery did not go through",
            "Receipt: invoice INV-000007 from Juniper Pottery is paid",
        ]
    )
    issued_text, _ = text_and_html(smtp.by_message_id(story[5])[0].message)
    assert f"View the invoice: {story[5].data.url}" in issued_text

    # The mail server has the emails; the log records "sent" right after it accepted them.
    async def all_sent() -> bool:
        found = await service.notifications(SELLER, order.order_id)
        return len(found) == 5 and all(item["status"] == "sent" for item in found)

    await wait_until(all_sent, equals=True)
    listed = await service.notifications(SELLER, order.order_id)
    assert [(item["template"], item["status"], item["attempts"]) for item in listed] == [
        ("order_accepted", "sent", 1),
        ("order_split", "sent", 1),
        ("invoice_issued", "sent", 1),
        ("invoice_payment_failed", "sent", 1),
        ("invoice_paid", "sent", 1),
    ] or sorted(item["template"] for item in listed) == sorted(
        [
            "order_accepted",
            "order_split",
            "invoice_issued",
            "invoice_payment_failed",
            "invoice_paid",
        ]
    )
    assert {item["to"] for item in listed} == {"ada@example.com"}
    assert all(item["sent_at"] for item in listed)
    assert {item["event_id"] for item in listed} == {str(event.event_id) for event in story[3:]}
    # The new order of a split shows the split email too.
    assert [
        item["template"] for item in await service.notifications(SELLER, f"{order.order_id}-S1")
    ] == ["order_split"]

    assert await service.notifications("seller-2", order.order_id) == []
    unauthenticated = await service.http.get(
        "/v1/notifications", params={"order_id": order.order_id}
    )
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == "unauthorized"


async def test_a_duplicated_event_sends_one_email(
    service: Any, smtp: Any, events: Any, snapshot: Any
) -> None:
    order = snapshot()
    accepted = events.accepted(order)
    sentinel = events.cancelled(order, "changed my mind")
    await service.publish([accepted, accepted])
    await service.publish([accepted, sentinel])
    await smtp.wait_for(2)
    # The sentinel came after every copy on the same partition: all copies were handled.
    assert len(smtp.by_message_id(accepted)) == 1
    assert len(smtp.by_message_id(sentinel)) == 1

    async def attempts() -> list[tuple[str, int]]:
        items = await service.notifications(SELLER, order.order_id)
        return [(item["template"], item["attempts"]) for item in items]

    # Attempts are stored with the outcome, just after the relay took the email.
    await wait_until(attempts, equals=[("order_accepted", 1), ("order_cancelled", 1)])


async def test_emails_wait_out_an_smtp_outage_and_arrive_once_after_it(
    service: Any, smtp: Any, events: Any, snapshot: Any
) -> None:
    orders = [snapshot() for _ in range(3)]
    await asyncio.to_thread(smtp.stop)
    decisions = [events.accepted(order) for order in orders]
    await service.publish(decisions)

    async def first_try_failed() -> bool:
        listed = await service.notifications(SELLER, orders[0].order_id)
        return bool(listed) and listed[0]["status"] == "pending" and listed[0]["attempts"] >= 2

    await wait_until(first_try_failed, equals=True, timeout=30)
    assert smtp.received == []

    await asyncio.to_thread(smtp.start)
    await smtp.wait_for(3)
    for decision in decisions:
        assert len(smtp.by_message_id(decision)) == 1
    for order in orders:
        await wait_until(lambda o=order: service.statuses(SELLER, o.order_id), equals=["sent"])
    assert len(smtp.received) == 3


async def test_a_refused_recipient_is_recorded_as_failed_and_others_still_get_theirs(
    service: Any, smtp: Any, events: Any, snapshot: Any
) -> None:
    gone = snapshot(buyer={"id": "b-9", "name": "Gone Buyer", "email": "gone@example.com"})
    fine = snapshot()
    smtp.refuse.add("gone@example.com")
    refused = events.rejected(gone, "out_of_stock")
    delivered = events.rejected(fine, "out_of_stock")
    await service.publish([refused, delivered])
    await smtp.wait_for(1)
    assert smtp.received[0].rcpt_tos == ["ada@example.com"]

    await wait_until(lambda: service.statuses(SELLER, gone.order_id), equals=["failed"])
    listed = await service.notifications(SELLER, gone.order_id)
    assert listed[0]["to"] == "gone@example.com"
    assert listed[0]["attempts"] == 1
    assert listed[0]["sent_at"] is None
    # Refused for good: a redelivered event does not try again.
    await service.publish([refused, events.accepted(fine)])
    await smtp.wait_for(2)
    assert (await service.notifications(SELLER, gone.order_id))[0]["attempts"] == 1


async def test_a_buyer_name_with_line_breaks_never_reaches_an_email(
    service: Any, smtp: Any, events: Any, snapshot: Any
) -> None:
    """The contracts refuse control characters in names: the event is dead-lettered, and the
    next event of the order (same partition, after it) is emailed as usual."""
    order = snapshot()
    eve = {"id": "b-eve", "name": "Eve\r\nBcc: victim@example.com", "email": "eve@example.com"}
    forged = order.model_copy(update={"buyer": Buyer.model_construct(**eve)})
    await service.publish([events.accepted(forged), events.accepted(order)])
    await smtp.wait_for(1)
    await asyncio.sleep(0.5)
    assert len(smtp.received) == 1
    received = smtp.received[0]
    assert received.rcpt_tos == [order.buyer.email]
    assert received.message["Bcc"] is None
    assert "victim" not in str(received.message)
    assert len(await service.notifications(SELLER, order.order_id)) == 1

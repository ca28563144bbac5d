"""What the buyer reads: each email's headers, both parts, wording, and what bad input cannot do."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from juniper_shared.contracts.common import Buyer
from juniper_shared.contracts.events import Envelope
from notifications.adapters.rendering import EmailComposer
from notifications.domain.notices import notice_for
from notifications.settings import NotificationsSettings

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SETTINGS = NotificationsSettings(auth_jwt_secret="dev-only-secret")
compose = EmailComposer(sender=SETTINGS.sender(), links=SETTINGS.buyer_link_keys())


def delivered(event: Envelope) -> EmailMessage:
    """The email as a mail client parses it off the wire."""
    notice = notice_for(event)
    assert notice is not None
    raw = compose(notice, now=NOW).as_bytes()
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    return text.get_content(), html.get_content()


EVENTS: dict[str, Callable[[Any, Any], Envelope]] = {
    "order_rejected": lambda events, order: events.rejected(order, "out_of_stock", "Back soon"),
    "order_accepted": lambda events, order: events.accepted(order),
    "order_split": lambda events, order: events.split(order, ["L2"]),
    "order_cancelled": lambda events, order: events.cancelled(order, "Warehouse flooded"),
    "order_expired": lambda events, order: events.expired(order),
    "invoice_issued": lambda events, order: events.invoice_issued(order),
    "invoice_payment_failed": lambda events, order: events.payment_failed(order),
    "invoice_paid": lambda events, order: events.paid(order),
    "invoice_voided": lambda events, order: events.voided(order),
}

SUBJECTS = {
    "order_rejected": "Your order {order} from Juniper Pottery was declined",
    "order_accepted": "Your order {order} from Juniper Pottery was accepted",
    "order_split": (
        "Your order {order} from Juniper Pottery was split; some items are now order {order}-S1"
    ),
    "order_cancelled": "Your order {order} from Juniper Pottery was cancelled",
    "order_expired": "Your order {order} from Juniper Pottery was not accepted in time",
    "invoice_issued": "Invoice INV-000001 from Juniper Pottery",
    "invoice_payment_failed": "Payment for invoice INV-000001 from Juniper Pottery did not go through",
    "invoice_paid": "Receipt: invoice INV-000001 from Juniper Pottery is paid",
    "invoice_voided": "Invoice INV-000001 from Juniper Pottery was cancelled",
}


@pytest.mark.parametrize("template", sorted(EVENTS))
def test_every_email_reaches_the_buyer_with_text_and_html(
    template: str, events: Any, snapshot: Any
) -> None:
    order = snapshot()
    event = EVENTS[template](events, order)
    message = delivered(event)

    assert message["Subject"] == SUBJECTS[template].format(order=order.order_id)
    assert message["From"] == "JuniperMarket <orders@junipermarket.test>"
    assert message["To"] == "Ada Buyer <ada@example.com>"
    assert message["Message-ID"] == f"<{event.event_id}@junipermarket.notifications>"
    assert message["Date"].datetime == NOW
    assert message.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    assert "Hello Ada Buyer," in text
    assert "<p" not in text
    assert "Hello Ada Buyer," in html
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert order.order_id in text
    assert order.order_id in html


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("out_of_stock", "some items are out of stock"),
        ("outside_territory", "your address is outside the area this seller serves"),
        ("buyer_not_approved", "this seller only sells to approved buyers"),
        ("other", "the seller could not fulfil it"),
    ],
)
def test_a_rejection_says_why_in_plain_words(
    reason: str, words: str, events: Any, snapshot: Any
) -> None:
    message = delivered(events.rejected(snapshot(), reason, "We restock in March."))
    text, html = parts(message)
    for part in (text, html):
        assert f"because {words}." in part
        assert "We restock in March." in part
        assert "Stoneware mug" in part
    assert reason not in text


def test_a_rejection_names_the_seller_or_falls_back_to_its_id(events: Any, snapshot: Any) -> None:
    message = delivered(events.rejected(snapshot(seller_name=None, seller_id="seller-77")))
    assert message["Subject"].endswith("from seller-77 was declined")
    assert "seller-77 declined your order" in parts(message)[0]


def test_html_in_the_sellers_message_is_shown_as_text(events: Any, snapshot: Any) -> None:
    message = delivered(
        events.rejected(snapshot(), "other", '<script>alert("x")</script><b>Sorry</b>')
    )
    text, html = parts(message)
    assert "<script>" not in html
    assert "<b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;Sorry&lt;/b&gt;" in html
    assert '<script>alert("x")</script><b>Sorry</b>' in text


def test_a_buyer_name_with_line_breaks_cannot_add_a_header(events: Any, snapshot: Any) -> None:
    buyer = {
        "id": "buyer-eve",
        "name": "Eve\r\nBcc: victim@example.com",
        "email": "eve@example.com",
    }
    # The contracts refuse control characters in names; the email is safe even without that.
    order = snapshot()
    unchecked = order.model_copy(update={"buyer": Buyer.model_construct(**buyer)})
    message = delivered(events.accepted(unchecked))
    assert message["Bcc"] is None
    assert [address.addr_spec for address in message["To"].addresses] == ["eve@example.com"]
    assert message["To"].addresses[0].display_name == "Eve Bcc: victim@example.com"
    assert "victim" not in message["Subject"]
    assert "Hello Eve Bcc: victim@example.com," in parts(message)[0]


def test_a_seller_name_with_line_breaks_stays_inside_the_subject(
    events: Any, snapshot: Any
) -> None:
    order = snapshot().model_copy(
        update={"seller_name": "Evil\nBcc: victim@example.com\r\nX-Spam: yes"}
    )
    message = delivered(events.rejected(order))
    assert message["Bcc"] is None
    assert message["X-Spam"] is None
    assert "from Evil Bcc: victim@example.com X-Spam: yes was declined" in message["Subject"]


def test_a_split_tells_what_moved_to_the_new_order(events: Any, snapshot: Any) -> None:
    order = snapshot()
    text, html = parts(delivered(events.split(order, ["L2"])))
    moved, kept = text.split(f"These items stay on order {order.order_id}:")
    assert f"moved to the new order {order.order_id}-S1" in moved
    assert "Green tea tin" in moved
    assert "Stoneware mug" not in moved
    assert "Stoneware mug" in kept
    assert f"<strong>{order.order_id}-S1</strong>" in html


def test_an_issued_invoice_links_to_the_invoice_with_its_total_and_due_date(
    events: Any, snapshot: Any
) -> None:
    order = snapshot()
    event = events.invoice_issued(order, number="INV-000042")
    text, html = parts(delivered(event))
    for part in (text, html):
        assert "INV-000042" in part
        assert "Amount due" in part
        assert "81.00 USD" in part
        assert "December 26, 2026" in part
    assert f"View the invoice: {event.data.url}?expires=" in text
    assert f'href="{event.data.url}?expires=' in html


@pytest.mark.parametrize("template", ["invoice_issued", "invoice_payment_failed", "invoice_paid"])
def test_every_invoice_link_opens_for_the_buyer_for_90_days(
    events: Any, snapshot: Any, template: str
) -> None:
    event = EVENTS[template](events, snapshot())
    text, _ = parts(delivered(event))
    link = re.search(r"View the invoice: (\S+)", text)
    assert link is not None
    url = urlsplit(link.group(1))
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    expires = int(query["expires"])
    assert expires == int((NOW + timedelta(days=90)).timestamp())
    keys = SETTINGS.buyer_link_keys()
    assert keys.verify(url.path, expires=expires, given=query["signature"], now=NOW)
    assert not keys.verify(
        url.path, expires=expires, given=query["signature"], now=NOW.replace(year=2027)
    )


def test_an_invoice_link_to_another_invoice_is_left_out(events: Any, snapshot: Any) -> None:
    event = events.invoice_issued(snapshot())
    elsewhere = event.data.url.replace(event.data.invoice_id, "inv-someone-else")
    event = event.model_copy(update={"data": event.data.model_copy(update={"url": elsewhere})})
    text, html = parts(delivered(event))
    assert "someone-else" not in text + html
    assert "signature=" not in text + html


def test_an_invoice_link_that_is_not_a_web_address_is_left_out(events: Any, snapshot: Any) -> None:
    event = events.invoice_issued(snapshot())
    event = event.model_copy(
        update={"data": event.data.model_copy(update={"url": "javascript:alert(1)"})}
    )
    text, html = parts(delivered(event))
    assert "javascript" not in text
    assert "javascript" not in html


def test_a_failed_payment_tells_the_buyer_what_to_do(events: Any, snapshot: Any) -> None:
    text, html = parts(delivered(events.payment_failed(snapshot(), reason="insufficient_funds")))
    for part in (text, html):
        assert "the card has insufficient funds" in part
        assert "update the card you pay with" in part
        assert "contact Juniper Pottery" in part
        assert "Juniper Pottery may try the payment again" in part


def test_a_receipt_shows_the_amount_paid_and_when(events: Any, snapshot: Any) -> None:
    order = snapshot()
    text, _ = parts(delivered(events.paid(order)))
    assert f"Amount paid: {order.total} USD" in text
    assert "Paid on:     November 27, 2026" in text
    assert "Keep this email as your receipt." in text


def test_a_received_order_sends_nothing(events: Any, snapshot: Any) -> None:
    assert notice_for(events.received(snapshot())) is None


def test_a_voided_invoice_tells_the_buyer_nothing_is_owed_and_a_charge_is_refunded(
    events: Any, snapshot: Any
) -> None:
    order = snapshot(status="cancelled")
    text, html = parts(delivered(events.voided(order)))
    for part in (text, html):
        assert f"for order {order.order_id} was cancelled on November 27, 2026" in part
        assert "You owe nothing on it." in part
        assert "If your card was charged for this invoice, the amount is refunded to it." in part
        assert f"{order.total} USD" in part


def test_names_beyond_ascii_reach_the_buyer_as_written(events: Any, snapshot: Any) -> None:
    buyer = {"id": "buyer-zoe", "name": "Zoë Müller, Café", "email": "zoe@example.com"}
    message = delivered(events.accepted(snapshot(buyer=buyer, seller_name="Poterie Élan")))
    assert message["To"].addresses[0].display_name == "Zoë Müller, Café"
    assert [address.addr_spec for address in message["To"].addresses] == ["zoe@example.com"]
    assert "from Poterie Élan was accepted" in message["Subject"]
    text, html = parts(message)
    assert "Hello Zoë Müller, Café," in text
    assert "Poterie Élan" in html

"""An order cancelled while its invoice was being issued: the row shows the invoice void."""

from __future__ import annotations

from datetime import timedelta

from orders.domain.order import InvoiceLink, PaymentStatus, Status

from .test_order_domain import NOW, new_order

LINK = InvoiceLink("inv-1", "INV-000001", "issued", "http://x/inv-1")
LATER = NOW + timedelta(minutes=1)


def test_a_voided_invoice_shows_void_keeps_the_payment_status_and_is_in_the_history() -> None:
    order = new_order()
    order.accept(now=NOW, customer_id=None)
    order.cancel(now=NOW, message="Out of clay")
    order.link_invoice(LINK, now=NOW)
    order.record_payment(PaymentStatus.PAID, now=NOW)

    order.void_invoice(LINK, now=LATER)

    assert order.status is Status.CANCELLED
    assert order.invoice == InvoiceLink("inv-1", "INV-000001", "void", "http://x/inv-1")
    assert order.payment_status is PaymentStatus.PAID  # payments tells of the refund, not us
    voided = [entry for entry in order.history if entry.type == "invoice_voided"]
    assert [(e.at, dict(e.details)) for e in voided] == [
        (LATER, {"invoice_id": "inv-1", "number": "INV-000001"})
    ]


def test_a_void_told_twice_is_recorded_once_and_nothing_revives_the_invoice() -> None:
    order = new_order()
    order.accept(now=NOW, customer_id=None)
    order.cancel(now=NOW, message="")
    order.link_invoice(LINK, now=NOW)
    order.void_invoice(LINK, now=LATER)
    order.void_invoice(LINK, now=LATER)
    order.link_invoice(LINK, now=LATER)  # a late replay of `invoice.issued`
    order.record_payment(PaymentStatus.FAILED, now=LATER, reason="card_declined")

    assert order.invoice is not None
    assert order.invoice.status == "void"
    assert order.payment_status is PaymentStatus.PENDING
    assert [e.type for e in order.history].count("invoice_voided") == 1

"""A cancelled order's invoice is voided: from which states, what the buyer sees, what follows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from invoicing.domain.errors import NotInvoiceable
from invoicing.domain.invoice import (
    Invoice,
    InvoiceStatus,
    PaymentFailure,
    PaymentStatus,
    draft_invoice,
)

from .test_invoice_domain import NOW, issued, order, shipping

LATER = NOW + timedelta(minutes=5)


def paid() -> Invoice:
    invoice = issued()
    invoice.record_payment_succeeded(at=NOW, processor_ref="ch_1")
    return invoice


def failed() -> Invoice:
    invoice = issued()
    invoice.record_payment_failed(PaymentFailure("card_declined", True, 1))
    return invoice


def draft() -> Invoice:
    return draft_invoice(order(), shipping(), now=NOW)


@pytest.mark.parametrize(
    ("build", "told", "payment_status"),
    [
        (draft, False, PaymentStatus.NONE),
        (issued, True, PaymentStatus.NONE),
        (failed, True, PaymentStatus.NONE),
        (paid, True, PaymentStatus.PAID),
    ],
)
def test_a_cancelled_orders_invoice_becomes_void_and_keeps_its_number(
    build: Callable[[], Invoice], told: bool, payment_status: PaymentStatus
) -> None:
    invoice = build()
    number = invoice.number

    assert invoice.void(now=LATER) is True

    assert invoice.status is InvoiceStatus.VOID
    assert invoice.number == number  # gapless numbering: a void invoice is still a record
    assert invoice.voided_at == LATER
    assert invoice.buyer_was_told is told
    # A charge already made shows as paid until the refund comes back.
    assert invoice.payment_status is payment_status


def test_voiding_twice_changes_nothing() -> None:
    invoice = issued()
    invoice.void(now=NOW)
    assert invoice.void(now=LATER) is False
    assert invoice.voided_at == NOW


def test_a_void_invoice_cannot_be_confirmed_nor_previewed_again() -> None:
    invoice = draft()
    invoice.void(now=NOW)
    with pytest.raises(NotInvoiceable, match="cancelled"):
        invoice.ensure_confirmable(order())
    with pytest.raises(NotInvoiceable, match="cancelled"):
        invoice.redraft(order(), shipping(), now=LATER)


def test_a_charge_landing_on_a_void_invoice_never_makes_it_paid_and_its_refund_shows() -> None:
    invoice = issued()
    invoice.void(now=NOW)

    assert invoice.record_payment_succeeded(at=LATER, processor_ref="ch_9") is False
    assert invoice.status is InvoiceStatus.VOID
    assert invoice.payment_status is PaymentStatus.PAID

    assert invoice.record_refund(at=LATER, refund_ref="re_1") is True
    assert invoice.record_refund(at=LATER + timedelta(seconds=1), refund_ref="re_2") is False
    assert invoice.status is InvoiceStatus.VOID
    assert invoice.payment_status is PaymentStatus.REFUNDED
    assert (invoice.refunded_at, invoice.refund_ref) == (LATER, "re_1")


def test_a_failure_reported_for_a_void_invoice_changes_nothing() -> None:
    invoice = issued()
    invoice.void(now=datetime(2026, 11, 26, tzinfo=UTC))
    assert invoice.record_payment_failed(PaymentFailure("card_declined", True, 1)) is False
    assert (invoice.status, invoice.failure) == (InvoiceStatus.VOID, None)

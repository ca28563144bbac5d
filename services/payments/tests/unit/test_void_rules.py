"""A voided invoice's payment: nothing more is charged, what was charged is refunded once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from payments.domain.errors import InvalidState
from payments.domain.payment import AttemptStatus, Payment, RefundStatus, refund_key

from .test_payment_rules import LATER, NOW, card_payment


def charged() -> Payment:
    payment = card_payment()
    assert payment.begin_charge(1, now=NOW)
    payment.succeed(1, processor_ref="ch_1", now=NOW)
    return payment


def test_a_void_before_the_charge_was_sent_means_it_is_never_sent() -> None:
    payment = card_payment()
    assert payment.void(now=LATER) is True

    assert payment.pending_attempt() is None
    assert payment.last_attempt.status is AttemptStatus.VOIDED
    assert payment.refund_due() is None
    with pytest.raises(InvalidState, match="not pending"):
        payment.begin_charge(1, now=LATER)


def test_the_check_right_before_the_processor_call_sees_a_void_and_sends_nothing() -> None:
    payment = card_payment()
    payment.voided_at = LATER  # stored by the void, read back by the charge
    assert payment.begin_charge(1, now=LATER) is False
    assert payment.last_attempt.status is AttemptStatus.VOIDED


def test_a_succeeded_charge_is_refunded_with_a_key_from_the_invoice_and_attempt() -> None:
    payment = charged()
    version = payment.version
    assert payment.void(now=LATER) is True

    refund = payment.refund_due()
    assert refund is not None
    assert (refund.attempt, refund.charge_ref, refund.idempotency_key) == (
        1,
        "ch_1",
        "inv-1:1:refund",
    )
    assert refund_key("inv-1", 1) == "inv-1:1:refund"
    assert payment.version == version + 1
    assert payment.last_attempt.status is AttemptStatus.SUCCEEDED  # the charge happened


def test_a_charge_in_flight_when_the_void_came_is_refunded_once_it_succeeds() -> None:
    payment = card_payment()
    assert payment.begin_charge(1, now=NOW)
    payment.void(now=LATER)
    assert payment.pending_attempt() is not None  # sent: only the processor knows its fate
    assert payment.refund_due() is None

    payment.succeed(1, processor_ref="ch_7", now=LATER)
    refund = payment.refund_due()
    assert refund is not None
    assert (refund.charge_ref, refund.idempotency_key) == ("ch_7", "inv-1:1:refund")


def test_a_charge_in_flight_that_is_declined_needs_no_refund() -> None:
    payment = card_payment()
    payment.begin_charge(1, now=NOW)
    payment.void(now=LATER)
    payment.fail(1, reason="card_declined", now=LATER)
    assert payment.refund_due() is None


def test_voiding_twice_changes_nothing_and_the_refund_ends_once() -> None:
    payment = charged()
    payment.void(now=LATER)
    assert payment.void(now=LATER + timedelta(minutes=1)) is False

    done = payment.refund_succeeded(refund_ref="re_1", now=LATER)
    assert (done.status, done.refund_ref) == (RefundStatus.SUCCEEDED, "re_1")
    assert payment.refund_due() is None
    with pytest.raises(InvalidState):
        payment.refund_succeeded(refund_ref="re_2", now=LATER)


def test_the_seller_cannot_retry_a_voided_payment() -> None:
    payment = card_payment()
    payment.begin_charge(1, now=NOW)
    payment.fail(1, reason="card_declined", now=NOW)
    payment.void(now=LATER)
    with pytest.raises(InvalidState, match="voided"):
        payment.start_retry(now=LATER)


def test_an_invoice_paid_another_way_is_voided_with_nothing_to_refund() -> None:
    payment = Payment.for_invoice(
        invoice_id="inv-2",
        seller_id="seller-1",
        order_id="ord-2",
        amount=100,
        currency="USD",
        method="net_terms",
        card=None,
        now=NOW,
    )
    assert payment.void(now=LATER) is True
    assert payment.refund_due() is None
    assert payment.last_attempt.status is AttemptStatus.NOT_APPLICABLE

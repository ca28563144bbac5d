"""The rules of one invoice's payment, as the seller meets them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from payments.domain.errors import InvalidState
from payments.domain.payment import AttemptStatus, Card, Payment, idempotency_key, is_retryable

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def card_payment() -> Payment:
    return Payment.for_invoice(
        invoice_id="inv-1",
        seller_id="seller-1",
        order_id="ord-1",
        amount=6600,
        currency="USD",
        method="credit_card",
        card=Card(brand="visa", last4="4242"),
        now=NOW,
    )


def test_an_invoice_paid_by_card_starts_with_attempt_one_pending_and_its_key() -> None:
    payment = card_payment()
    assert [(a.attempt, a.status, a.idempotency_key) for a in payment.attempts] == [
        (1, AttemptStatus.PENDING, "inv-1:1")
    ]
    assert payment.pending_attempt() is payment.attempts[0]


@pytest.mark.parametrize("method", ["net_terms", "other"])
def test_an_invoice_paid_another_way_is_not_charged_and_cannot_be_retried(method: str) -> None:
    payment = Payment.for_invoice(
        invoice_id="inv-2",
        seller_id="seller-1",
        order_id="ord-2",
        amount=100,
        currency="USD",
        method=method,
        card=None,
        now=NOW,
    )
    assert payment.status is AttemptStatus.NOT_APPLICABLE
    assert payment.pending_attempt() is None
    with pytest.raises(InvalidState):
        payment.start_retry(now=LATER)


def test_idempotency_keys_are_derived_from_invoice_and_attempt() -> None:
    assert idempotency_key("inv-9", 1) == "inv-9:1"
    assert idempotency_key("inv-9", 2) != idempotency_key("inv-9", 1)
    assert idempotency_key("inv-9", 3) == idempotency_key("inv-9", 3)


def test_a_success_ends_the_attempt_and_bumps_the_version() -> None:
    payment = card_payment()
    payment.succeed(1, processor_ref="ch_1", now=LATER)
    assert payment.status is AttemptStatus.SUCCEEDED
    assert payment.last_attempt.processor_ref == "ch_1"
    assert payment.last_attempt.at == LATER
    assert payment.version == 2


def test_an_attempt_ends_only_once() -> None:
    payment = card_payment()
    payment.fail(1, reason="card_declined", now=LATER, processor_ref="ch_1")
    with pytest.raises(InvalidState):
        payment.succeed(1, processor_ref="ch_2", now=LATER)
    with pytest.raises(InvalidState):
        payment.fail(1, reason="card_declined", now=LATER)


@pytest.mark.parametrize("last", ["pending", "succeeded"])
def test_a_retry_is_refused_unless_the_last_attempt_failed(last: str) -> None:
    payment = card_payment()
    if last == "succeeded":
        payment.succeed(1, processor_ref="ch_1", now=LATER)
    with pytest.raises(InvalidState, match="only possible after a failed payment"):
        payment.start_retry(now=LATER)
    assert len(payment.attempts) == 1


def test_a_retry_after_a_failure_is_a_new_pending_attempt_with_a_new_key() -> None:
    payment = card_payment()
    payment.fail(1, reason="card_declined", now=NOW, processor_ref="ch_1")
    retry = payment.start_retry(now=LATER)
    assert (retry.attempt, retry.status, retry.idempotency_key) == (
        2,
        AttemptStatus.PENDING,
        "inv-1:2",
    )
    assert payment.attempts[0].status is AttemptStatus.FAILED  # history is kept
    with pytest.raises(InvalidState):
        payment.start_retry(now=LATER)  # the new attempt is still pending


@pytest.mark.parametrize(
    ("reason", "retryable"),
    [
        ("card_declined", True),
        ("insufficient_funds", True),
        ("processor_unavailable", True),
        ("card_unavailable", True),
        ("invalid_card", False),
        ("processor_error", False),
        ("something_new", False),
    ],
)
def test_a_failure_says_whether_trying_the_card_again_may_help(
    reason: str, retryable: bool
) -> None:
    payment = card_payment()
    payment.fail(1, reason=reason, now=LATER)
    assert payment.last_attempt.retryable is retryable
    assert is_retryable(reason) is retryable

"""Integration events: a payment as other services see it, and a payment from an invoice."""

from __future__ import annotations

from datetime import datetime

from juniper_shared.contracts.common import CardSummary
from juniper_shared.contracts.events import (
    Envelope,
    InvoiceIssued,
    PaymentFailed,
    PaymentFailedData,
    PaymentRefunded,
    PaymentRefundedData,
    PaymentSucceeded,
    PaymentSucceededData,
)
from juniper_shared.contracts.money import from_minor, to_minor

from payments.domain.payment import Attempt, AttemptStatus, Card, Payment, Refund

PRODUCER = "payments"


def payment_for(event: InvoiceIssued, *, now: datetime) -> Payment:
    data = event.data
    method = data.payment_method
    return Payment.for_invoice(
        invoice_id=data.invoice_id,
        seller_id=data.seller_id,
        order_id=data.order_id,
        amount=to_minor(data.amount, data.currency),
        currency=data.currency,
        method=method.type,
        card=Card(brand=method.brand, last4=method.last4)
        if isinstance(method, CardSummary)
        else None,
        now=now,
        correlation_id=event.correlation_id or str(event.event_id),
    )


def outcome_event(payment: Payment, attempt: Attempt) -> Envelope:
    amount = from_minor(payment.amount, payment.currency)
    if attempt.status is AttemptStatus.SUCCEEDED:
        assert attempt.processor_ref is not None
        card = payment.card
        return PaymentSucceeded(
            producer=PRODUCER,
            seller_id=payment.seller_id,
            correlation_id=payment.correlation_id,
            data=PaymentSucceededData(
                invoice_id=payment.invoice_id,
                order_id=payment.order_id,
                attempt=attempt.attempt,
                amount=amount,
                currency=payment.currency,
                processor_ref=attempt.processor_ref,
                card=CardSummary(type="credit_card", brand=card.brand, last4=card.last4)
                if card
                else None,
            ),
        )
    assert attempt.reason is not None
    return PaymentFailed(
        producer=PRODUCER,
        seller_id=payment.seller_id,
        correlation_id=payment.correlation_id,
        data=PaymentFailedData(
            invoice_id=payment.invoice_id,
            order_id=payment.order_id,
            attempt=attempt.attempt,
            amount=amount,
            currency=payment.currency,
            reason=attempt.reason,
            retryable=attempt.retryable,
            processor_ref=attempt.processor_ref,
        ),
    )


def refunded_event(payment: Payment, refund: Refund) -> PaymentRefunded:
    assert refund.refund_ref is not None
    return PaymentRefunded(
        producer=PRODUCER,
        seller_id=payment.seller_id,
        correlation_id=payment.correlation_id,
        data=PaymentRefundedData(
            invoice_id=payment.invoice_id,
            order_id=payment.order_id,
            attempt=refund.attempt,
            amount=from_minor(payment.amount, payment.currency),
            currency=payment.currency,
            processor_ref=refund.charge_ref,
            refund_ref=refund.refund_ref,
            reason="invoice_voided",
        ),
    )

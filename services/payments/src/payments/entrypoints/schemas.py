"""The payments API's bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from payments.domain.payment import Attempt, Payment


class AttemptView(BaseModel):
    attempt: int
    status: str
    reason: str | None
    retryable: bool
    processor_ref: str | None
    at: datetime


class CardView(BaseModel):
    brand: str
    last4: str


class RefundView(BaseModel):
    attempt: int
    status: str
    """pending, succeeded or failed."""
    charge_ref: str
    refund_ref: str | None
    at: datetime


class PaymentView(BaseModel):
    invoice_id: str
    order_id: str
    status: str
    """The last attempt's status: pending, succeeded, failed, not_applicable or voided."""
    amount: str
    currency: str
    card: CardView | None
    attempts: list[AttemptView]
    voided_at: datetime | None = None
    """Set once the invoice was voided (its order cancelled): nothing more is charged."""
    refund: RefundView | None = None
    """The refund of a charge made for an invoice that was voided."""


class RetryAccepted(AttemptView):
    invoice_id: str


def attempt_view(attempt: Attempt) -> AttemptView:
    return AttemptView(
        attempt=attempt.attempt,
        status=attempt.status.value,
        reason=attempt.reason,
        retryable=attempt.retryable,
        processor_ref=attempt.processor_ref,
        at=attempt.at,
    )


def payment_view(payment: Payment, *, amount: str) -> PaymentView:
    return PaymentView(
        invoice_id=payment.invoice_id,
        order_id=payment.order_id,
        status=payment.status.value,
        amount=amount,
        currency=payment.currency,
        card=CardView(brand=payment.card.brand, last4=payment.card.last4) if payment.card else None,
        attempts=[attempt_view(attempt) for attempt in payment.attempts],
        voided_at=payment.voided_at,
        refund=RefundView(
            attempt=refund.attempt,
            status=refund.status.value,
            charge_ref=refund.charge_ref,
            refund_ref=refund.refund_ref,
            at=refund.at,
        )
        if (refund := payment.refund)
        else None,
    )

"""One invoice's payment: a list of charge attempts, each with its own idempotency key.

Rules: an invoice paid by card starts with attempt 1 pending; an attempt ends once, as
succeeded or failed; the seller may start a new attempt only after the last one failed;
an invoice paid any other way gets one `not_applicable` attempt and is never charged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from payments.domain.errors import InvalidState


class AttemptStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"


CREDIT_CARD = "credit_card"

# Why an attempt failed, and whether trying the same card again may succeed.
RETRYABLE: dict[str, bool] = {
    "card_declined": True,  # a bank may approve later (tok_decline_once)
    "insufficient_funds": True,  # the buyer may add funds
    "invalid_card": False,  # the token will never work
    "processor_unavailable": True,  # timeouts and 5xx outlived our retries
    "processor_error": False,  # the processor refused the request itself
    "card_unavailable": True,  # the card has not reached our vault yet
}


def is_retryable(reason: str) -> bool:
    return RETRYABLE.get(reason, False)


def idempotency_key(invoice_id: str, attempt: int) -> str:
    """The processor's Idempotency-Key for one attempt: the same after any crash or replay."""
    return f"{invoice_id}:{attempt}"


@dataclass
class Attempt:
    attempt: int
    idempotency_key: str
    status: AttemptStatus
    at: datetime
    reason: str | None = None
    retryable: bool = False
    processor_ref: str | None = None


@dataclass(frozen=True)
class Card:
    """What we may show of a card: brand and last four digits, never the token."""

    brand: str
    last4: str


@dataclass
class Payment:
    invoice_id: str
    seller_id: str
    order_id: str
    amount: int
    """Minor units (cents)."""
    currency: str
    method: str
    card: Card | None
    attempts: list[Attempt] = field(default_factory=list)
    version: int = 1
    correlation_id: str = ""

    @classmethod
    def for_invoice(
        cls,
        *,
        invoice_id: str,
        seller_id: str,
        order_id: str,
        amount: int,
        currency: str,
        method: str,
        card: Card | None,
        now: datetime,
        correlation_id: str = "",
    ) -> Payment:
        """A new invoice's payment: attempt 1 is stored pending before the card is charged."""
        payment = cls(
            invoice_id=invoice_id,
            seller_id=seller_id,
            order_id=order_id,
            amount=amount,
            currency=currency,
            method=method,
            card=card,
            correlation_id=correlation_id,
        )
        status = AttemptStatus.PENDING if method == CREDIT_CARD else AttemptStatus.NOT_APPLICABLE
        payment.attempts.append(
            Attempt(
                attempt=1, idempotency_key=idempotency_key(invoice_id, 1), status=status, at=now
            )
        )
        return payment

    @property
    def last_attempt(self) -> Attempt:
        return self.attempts[-1]

    @property
    def status(self) -> AttemptStatus:
        """The payment's status is its last attempt's."""
        return self.last_attempt.status

    def pending_attempt(self) -> Attempt | None:
        last = self.last_attempt
        return last if last.status is AttemptStatus.PENDING else None

    def start_retry(self, *, now: datetime) -> Attempt:
        """The seller's retry: a new attempt with a new key, only after a failed one."""
        if self.method != CREDIT_CARD:
            raise InvalidState("this invoice is not paid by credit card")
        if self.last_attempt.status is not AttemptStatus.FAILED:
            raise InvalidState(
                f"a retry is only possible after a failed payment; the last attempt is "
                f"{self.last_attempt.status.value}"
            )
        number = self.last_attempt.attempt + 1
        attempt = Attempt(
            attempt=number,
            idempotency_key=idempotency_key(self.invoice_id, number),
            status=AttemptStatus.PENDING,
            at=now,
        )
        self.attempts.append(attempt)
        self.version += 1
        return attempt

    def succeed(self, attempt: int, *, processor_ref: str, now: datetime) -> Attempt:
        current = self._pending(attempt)
        current.status = AttemptStatus.SUCCEEDED
        current.processor_ref = processor_ref
        current.at = now
        self.version += 1
        return current

    def fail(
        self, attempt: int, *, reason: str, now: datetime, processor_ref: str | None = None
    ) -> Attempt:
        current = self._pending(attempt)
        current.status = AttemptStatus.FAILED
        current.reason = reason
        current.retryable = is_retryable(reason)
        current.processor_ref = processor_ref
        current.at = now
        self.version += 1
        return current

    def _pending(self, attempt: int) -> Attempt:
        current = self.pending_attempt()
        if current is None or current.attempt != attempt:
            raise InvalidState(f"attempt {attempt} of invoice {self.invoice_id} is not pending")
        return current

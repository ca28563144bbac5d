"""One invoice's payment: a list of charge attempts, each with its own idempotency key.

Rules: an invoice paid by card starts with attempt 1 pending; an attempt ends once, as
succeeded or failed; the seller may start a new attempt only after the last one failed;
an invoice paid any other way gets one `not_applicable` attempt and is never charged.

A voided invoice (its order was cancelled) is never charged from then on: an attempt not yet
sent to the processor is `voided`; a charge that succeeded, before or after the void, is
refunded once, with a key derived from the invoice and attempt.
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
    VOIDED = "voided"
    """Never sent to the processor: the invoice was voided first."""


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


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


def refund_key(invoice_id: str, attempt: int) -> str:
    """The processor's Idempotency-Key for refunding one attempt's charge."""
    return f"{invoice_id}:{attempt}:refund"


@dataclass
class Attempt:
    attempt: int
    idempotency_key: str
    status: AttemptStatus
    at: datetime
    reason: str | None = None
    retryable: bool = False
    processor_ref: str | None = None
    sent_at: datetime | None = None
    """When the charge was last sent to the processor; None: it never was (safe to void)."""


@dataclass
class Refund:
    """Giving back one attempt's charge; stored (with its key) before the processor is called."""

    attempt: int
    idempotency_key: str
    charge_ref: str
    status: RefundStatus
    at: datetime
    refund_ref: str | None = None
    reason: str | None = None


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
    voided_at: datetime | None = None
    refund: Refund | None = None

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

    @property
    def updated_at(self) -> datetime:
        """When anything last happened to this payment."""
        moments = [attempt.at for attempt in self.attempts]
        moments += [at for at in (self.voided_at, self.refund.at if self.refund else None) if at]
        return max(moments)

    def refund_due(self) -> Refund | None:
        """The refund still to be made at the processor, if any."""
        refund = self.refund
        return refund if refund is not None and refund.status is RefundStatus.PENDING else None

    def start_retry(self, *, now: datetime) -> Attempt:
        """The seller's retry: a new attempt with a new key, only after a failed one."""
        if self.voided_at is not None:
            raise InvalidState(
                "the invoice was voided (its order was cancelled); nothing to charge"
            )
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

    def begin_charge(self, attempt: int, *, now: datetime) -> bool:
        """Right before calling the processor: whether to send the charge at all.

        Stored with a guarded write, so a void stored first is seen here, and a void stored
        after knows the charge may be on its way. A charge sent before (a crash, a lost
        process) is sent again with its key even when voided: only the processor knows whether
        it went through, and a replay returns that first answer; a success is then refunded."""
        current = self._pending(attempt)
        if self.voided_at is not None and current.sent_at is None:
            current.status = AttemptStatus.VOIDED
            current.at = now
            self.version += 1
            return False
        current.sent_at = now
        self.version += 1
        return True

    def mark_first_sent(self, *, now: datetime) -> None:
        """Attempt 1 of a new payment, stored as sent: its charge follows the insert at once
        (the card is at hand), so the insert is its void check. Not a change: the version
        stays."""
        first = self._pending(1)
        if self.voided_at is not None or len(self.attempts) != 1:
            raise InvalidState(f"payment of invoice {self.invoice_id} is not new")
        first.sent_at = now

    def succeed(self, attempt: int, *, processor_ref: str, now: datetime) -> Attempt:
        current = self._pending(attempt)
        current.status = AttemptStatus.SUCCEEDED
        current.processor_ref = processor_ref
        current.at = now
        if self.voided_at is not None:
            self._owe_refund(current, now=now)  # the charge was in flight when the void came
        self.version += 1
        return current

    def void(self, *, now: datetime, unsent_since: datetime | None = None) -> bool:
        """The invoice was voided: charge nothing more, refund what was charged.
        Returns whether anything changed (a second void changes nothing).
        `unsent_since`: the caller holds back the charge of an attempt stored as sent at that
        moment, so that attempt was never sent and is voided too."""
        if self.voided_at is not None:
            return False
        self.voided_at = now
        pending = self.pending_attempt()
        if pending is not None and pending.sent_at in (None, unsent_since):
            pending.status = AttemptStatus.VOIDED
            pending.at = now
        charged = [a for a in self.attempts if a.status is AttemptStatus.SUCCEEDED]
        if charged:
            self._owe_refund(charged[-1], now=now)
        self.version += 1
        return True

    def refund_succeeded(self, *, refund_ref: str, now: datetime) -> Refund:
        refund = self._refund_pending()
        refund.status = RefundStatus.SUCCEEDED
        refund.refund_ref = refund_ref
        refund.at = now
        self.version += 1
        return refund

    def refund_failed(self, *, reason: str, now: datetime) -> Refund:
        """The processor refused the refund itself: a person has to look (it is not retried)."""
        refund = self._refund_pending()
        refund.status = RefundStatus.FAILED
        refund.reason = reason
        refund.at = now
        self.version += 1
        return refund

    def _owe_refund(self, attempt: Attempt, *, now: datetime) -> None:
        if self.refund is not None:
            return
        assert attempt.processor_ref is not None
        self.refund = Refund(
            attempt=attempt.attempt,
            idempotency_key=refund_key(self.invoice_id, attempt.attempt),
            charge_ref=attempt.processor_ref,
            status=RefundStatus.PENDING,
            at=now,
        )

    def _refund_pending(self) -> Refund:
        refund = self.refund_due()
        if refund is None:
            raise InvalidState(f"no refund of invoice {self.invoice_id} is pending")
        return refund

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

"""Charging issued invoices, keeping the card vault, and the seller's retry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from juniper_shared.clock import utc_now
from juniper_shared.contracts.events import (
    Envelope,
    InvoiceIssued,
    InvoiceVoided,
)
from juniper_shared.contracts.money import from_minor
from juniper_shared.contracts.registry import ForgedEvent
from juniper_shared.errors import RetryLater
from juniper_shared.logs import correlation_id
from juniper_shared.retries import retry_on_conflict

from payments.application.events import outcome_event, payment_for, refunded_event
from payments.application.ports import (
    CardProcessor,
    CardVault,
    ChargeRequest,
    PaymentRepository,
    ProcessorRejected,
    ProcessorUnavailable,
    RefundRequest,
    Scheduler,
    StoredCard,
    VersionConflict,
)
from payments.domain.errors import InvalidState, NotFound
from payments.domain.payment import CREDIT_CARD, Attempt, AttemptStatus, Payment
from payments.metrics import PAYMENT_OUTCOMES, PAYMENTS_VOIDED, REFUND_OUTCOMES

log = logging.getLogger(__name__)

SAVE_RETRIES = 3
"""A write that races another write to the same payment is redone on fresh state this often."""

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    approved: bool
    processor_ref: str | None = None
    reason: str | None = None


@dataclass
class PaymentsHandlers:
    payments: PaymentRepository
    vault: CardVault
    processor: CardProcessor
    scheduler: Scheduler
    card_waits: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0)
    """Pauses while an invoice's card has not reached the vault yet (topics are independent)."""
    clock: Clock = utc_now
    sleep: Sleep = asyncio.sleep
    _unsent: dict[str, datetime] = field(default_factory=dict, init=False)
    """Invoices stored as sent whose charge has not started yet in this process: the moment
    stored. A void that takes one out voids the attempt, and the charge is never sent."""

    # --- invoices -------------------------------------------------------------------------

    async def on_invoices_issued(
        self, issued: Sequence[InvoiceIssued], *, voided: Collection[str] = frozenset()
    ) -> None:
        """Store attempt 1 of each new invoice (pending for cards), then charge in the background.

        An attempt whose card is in the vault already is stored as sent: its charge follows the
        insert at once, so no second write marks the send. A void that comes before the charge
        starts here takes it back (`_unsent`); after that, or in another process, it refunds.
        `voided`: invoices voided later in the same batch: stored unsent and not charged here
        (the void that follows voids the attempt; were it lost, the pending scan resumes it).
        A redelivered invoice finds its payment stored: no new attempt; a pending one is resumed
        with its stored idempotency key.
        """
        now = self.clock()
        unique = {event.data.invoice_id: event for event in issued}
        payments = [payment_for(event, now=now) for event in unique.values()]
        cards = await asyncio.gather(*(self._card_now(payment) for payment in payments))
        ready: dict[str, StoredCard] = {}
        for payment, card in zip(payments, cards, strict=True):
            if card is not None and payment.invoice_id not in voided:
                payment.mark_first_sent(now=now)
                ready[payment.invoice_id] = card
        new = [(payment, str(unique[payment.invoice_id].event_id)) for payment in payments]
        inserted = set(await self.payments.add_new(new))
        for payment in payments:
            invoice_id = payment.invoice_id
            if invoice_id in inserted and payment.method != CREDIT_CARD:
                PAYMENT_OUTCOMES.labels(AttemptStatus.NOT_APPLICABLE.value, "").inc()
            if payment.method != CREDIT_CARD or invoice_id in voided:
                continue
            if invoice_id in inserted:
                # Handed over as just stored (a redelivered one is read).
                card = ready.get(invoice_id)
                if card is not None:
                    self._unsent[invoice_id] = now
                self._schedule(invoice_id, known=payment, card=card)
            else:
                self._schedule(invoice_id)

    async def resume_pending(self, *, older_than: timedelta, limit: int = 100) -> int:
        """Charge again (same key) attempts a crash or a lost process left pending."""
        invoice_ids = await self.payments.pending(
            since_before=self.clock() - older_than, limit=limit
        )
        for invoice_id in invoice_ids:
            self._schedule(invoice_id)
        return len(invoice_ids)

    def _schedule(
        self, invoice_id: str, *, known: Payment | None = None, card: StoredCard | None = None
    ) -> None:
        taken = self.scheduler.submit(
            invoice_id, lambda: self.charge_pending(invoice_id, known=known, card=card)
        )
        if not taken:
            # Not charged here (queue full, stopping): the pending scan charges it later.
            self._unsent.pop(invoice_id, None)

    async def on_invoices_voided(self, voided: Sequence[InvoiceVoided]) -> None:
        """Charge nothing more for a voided invoice; refund what was charged (in the background).

        An attempt not yet sent is voided; one in flight is left to end and then refunded.
        A redelivered void changes nothing."""
        for event in {event.data.invoice_id: event for event in voided}.values():
            payment = await self._void(event)
            if payment is not None and payment.refund_due() is not None:
                self._schedule(event.data.invoice_id)

    async def _void(self, event: InvoiceVoided) -> Payment | None:
        invoice_id = event.data.invoice_id
        # Its charge, queued here, will not be sent now: the void may void the attempt.
        unsent_since = self._unsent.pop(invoice_id, None)

        async def attempt(_: int) -> Payment | None:
            payment = await self.payments.get(invoice_id)
            if payment is None:
                # `invoice.issued` precedes `invoice.voided` on the invoice's partition.
                log.warning("void of invoice %s that has no payment", invoice_id)
                return None
            if payment.seller_id != event.seller_id or payment.order_id != event.data.order_id:
                raise ForgedEvent(
                    f"invoice.voided of seller {event.seller_id!r} and order "
                    f"{event.data.order_id} names the payment of another seller or order"
                )
            if not payment.void(now=self.clock(), unsent_since=unsent_since):
                return payment
            await self.payments.save(payment, [])
            PAYMENTS_VOIDED.inc()
            return payment

        try:
            # A charge that began or ended meanwhile misses the save: void what it left.
            return await retry_on_conflict(attempt, conflict=VersionConflict, attempts=SAVE_RETRIES)
        except VersionConflict:
            raise RetryLater(
                f"payment {invoice_id} kept changing; the batch will be retried"
            ) from None

    async def charge_pending(
        self, invoice_id: str, *, known: Payment | None = None, card: StoredCard | None = None
    ) -> None:
        """Charge the pending attempt of an invoice, then store its outcome and event at once;
        then make the refund a voided invoice is owed, if any. `known`: the payment as just
        stored; if it changed since (voided), the guarded start misses and reads it again.
        `card`: the card `known` was stored as sent with, so no write marks the send."""
        # From here the charge is under way: a void no longer takes it back.
        if self._unsent.pop(invoice_id, None) is None and card is not None:
            known = card = None  # a void took it back first: see what it left
        payment = known or await self.payments.get(invoice_id)
        if payment is None:
            return
        token = correlation_id.set(payment.correlation_id)
        try:
            attempt = payment.pending_attempt()
            if attempt is not None:
                payment = await self._charge_attempt(payment, attempt.attempt, card=card)
            if payment is not None and payment.refund_due() is not None:
                await self._refund(payment)
        finally:
            correlation_id.reset(token)

    async def _charge_attempt(
        self, payment: Payment, attempt: int, *, card: StoredCard | None
    ) -> Payment | None:
        if card is None:
            card = await self._card(payment)
            if card is None:
                outcome = Outcome(approved=False, reason="card_unavailable")
                return await self._record(payment, attempt, outcome)
            started = await self._begin(payment.invoice_id, attempt, known=payment)
            if started is None:
                return None  # voided before anything was sent, or ended by another process
            payment = started
        sent = next(a for a in payment.attempts if a.attempt == attempt)
        outcome = await self._charge(payment, sent, card)
        return await self._record(payment, attempt, outcome)

    async def _begin(
        self, invoice_id: str, attempt: int, *, known: Payment | None = None
    ) -> Payment | None:
        """The void check right before the processor call, as a guarded write. `known`: the
        payment as just read (if it is stale, the guarded write misses and it is read again)."""

        async def begin(number: int) -> Payment | None:
            payment = (
                known if number == 1 and known is not None else await self.payments.get(invoice_id)
            )
            pending = payment.pending_attempt() if payment is not None else None
            if payment is None or pending is None or pending.attempt != attempt:
                return None
            send = payment.begin_charge(attempt, now=self.clock())
            await self.payments.save(payment, [])
            if not send:
                log.info("attempt %d of %s not charged: invoice voided", attempt, invoice_id)
                return None
            return payment

        try:
            return await retry_on_conflict(begin, conflict=VersionConflict, attempts=SAVE_RETRIES)
        except VersionConflict:
            raise RetryLater(f"payment {invoice_id} kept changing; it stays pending") from None

    async def _charge(self, payment: Payment, attempt: Attempt, card: StoredCard) -> Outcome:
        request = ChargeRequest(
            amount=str(from_minor(payment.amount, payment.currency)),
            currency=payment.currency,
            card_token=card.card_token,
            reference=payment.invoice_id,
            idempotency_key=attempt.idempotency_key,
            description=f"Invoice {payment.invoice_id} (order {payment.order_id})",
        )
        try:
            result = await self.processor.charge(request)
        except ProcessorUnavailable as error:
            log.warning("card processor unavailable for %s: %s", payment.invoice_id, error)
            return Outcome(approved=False, reason="processor_unavailable")
        except ProcessorRejected as error:
            log.error("card processor refused the charge for %s: %s", payment.invoice_id, error)
            return Outcome(approved=False, reason="processor_error")
        if result.approved:
            return Outcome(approved=True, processor_ref=result.processor_ref)
        return Outcome(
            approved=False,
            processor_ref=result.processor_ref,
            reason=result.decline_code or "card_declined",
        )

    async def _refund(self, payment: Payment) -> None:
        """Give back a voided invoice's charge: key stored before the call, reused after a crash."""
        refund = payment.refund_due()
        assert refund is not None
        request = RefundRequest(
            charge_ref=refund.charge_ref,
            amount=str(from_minor(payment.amount, payment.currency)),
            idempotency_key=refund.idempotency_key,
        )
        refund_ref: str | None = None
        reason: str | None = None
        try:
            refund_ref = (await self.processor.refund(request)).refund_ref
        except ProcessorUnavailable as error:
            # Stays pending: the pending scan tries again with the same key.
            log.warning("card processor unavailable to refund %s: %s", payment.invoice_id, error)
            return
        except ProcessorRejected as error:
            log.error("card processor refused the refund of %s: %s", payment.invoice_id, error)
            reason = "processor_error"

        async def record(number: int) -> None:
            current = payment if number == 1 else await self.payments.get(payment.invoice_id)
            if current is None or current.refund_due() is None:
                return  # another process recorded it already
            now = self.clock()
            events: list[Envelope] = []
            if refund_ref is not None:
                ended = current.refund_succeeded(refund_ref=refund_ref, now=now)
                events.append(refunded_event(current, ended))
            else:
                ended = current.refund_failed(reason=reason or "processor_error", now=now)
            await self.payments.save(current, events)
            REFUND_OUTCOMES.labels(ended.status.value).inc()

        try:
            await retry_on_conflict(record, conflict=VersionConflict, attempts=SAVE_RETRIES)
        except VersionConflict:
            raise RetryLater(
                f"payment {payment.invoice_id} kept changing; the refund stays pending"
            ) from None

    async def _card(self, payment: Payment) -> StoredCard | None:
        """The invoice's card, waiting a bounded while for the vault to catch up."""
        for pause in (*self.card_waits, None):
            card = await self._card_now(payment)
            if card is not None or pause is None:
                return card
            await self.sleep(pause)
        return None

    async def _card_now(self, payment: Payment) -> StoredCard | None:
        """The invoice's card if the vault holds it (and it is the invoice's seller's)."""
        if payment.method != CREDIT_CARD:
            return None
        card = await self.vault.card_for(payment.order_id)
        return card if card is not None and card.seller_id == payment.seller_id else None

    async def _record(self, payment: Payment, attempt: int, outcome: Outcome) -> Payment | None:
        """Store the attempt's outcome and its event; returns the payment as stored."""
        invoice_id = payment.invoice_id

        async def record(number: int) -> Payment | None:
            # After a miss, a void came in meanwhile: record on top of it.
            current = payment if number == 1 else await self.payments.get(invoice_id)
            pending = current.pending_attempt() if current is not None else None
            if current is None or pending is None or pending.attempt != attempt:
                return current  # another process recorded this attempt already
            now = self.clock()
            if outcome.approved:
                assert outcome.processor_ref is not None
                ended = current.succeed(attempt, processor_ref=outcome.processor_ref, now=now)
            else:
                assert outcome.reason is not None
                ended = current.fail(
                    attempt, reason=outcome.reason, processor_ref=outcome.processor_ref, now=now
                )
            await self.payments.save(current, [outcome_event(current, ended)])
            PAYMENT_OUTCOMES.labels(ended.status.value, ended.reason or "").inc()
            if ended.status is AttemptStatus.FAILED:
                log.info("payment of %s failed (attempt %d, %s)", invoice_id, attempt, ended.reason)
            return current

        try:
            return await retry_on_conflict(record, conflict=VersionConflict, attempts=SAVE_RETRIES)
        except VersionConflict:
            raise RetryLater(f"payment {invoice_id} kept changing; it stays pending") from None

    # --- the seller -----------------------------------------------------------------------

    async def payment(self, seller_id: str, invoice_id: str) -> Payment:
        payment = await self.payments.get(invoice_id)
        if payment is None or payment.seller_id != seller_id:
            raise NotFound(f"no payment for invoice {invoice_id}")
        return payment

    async def retry(self, seller_id: str, invoice_id: str) -> Attempt:
        """A new attempt with a new key, stored pending, then charged in the background."""

        async def start(_: int) -> Attempt:
            payment = await self.payment(seller_id, invoice_id)
            payment.correlation_id = correlation_id.get() or payment.correlation_id
            attempt = payment.start_retry(now=self.clock())
            await self.payments.save(payment, [])
            return attempt

        try:
            # The outcome of the last attempt or another retry may get there first.
            attempt = await retry_on_conflict(
                start, conflict=VersionConflict, attempts=SAVE_RETRIES
            )
        except VersionConflict:
            raise InvalidState("the payment is changing; look again") from None
        self._schedule(invoice_id)
        return attempt

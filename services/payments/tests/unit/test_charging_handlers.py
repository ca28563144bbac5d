"""Charging on fakes: a crash between storing an attempt and charging it reuses the stored key."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from juniper_shared.contracts.events import Envelope, InvoiceIssued
from juniper_testkit import placed_order
from payments.application.cards import CardKeeping
from payments.application.handlers import PaymentsHandlers
from payments.application.ports import (
    ChargeRequest,
    ChargeResult,
    Job,
    PlacedCard,
    RefundRequest,
    RefundResult,
    StoredCard,
    VersionConflict,
)
from payments.domain.payment import Payment

from ..builders import invoice_issued

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class FakePayments:
    def __init__(self) -> None:
        self.stored: dict[str, Payment] = {}
        self.events: list[Envelope] = []

    async def get(self, invoice_id: str) -> Payment | None:
        stored = self.stored.get(invoice_id)
        return _copy(stored) if stored else None

    async def add_new(self, payments: Sequence[tuple[Payment, str]]) -> list[str]:
        new = [p for p, _ in payments if p.invoice_id not in self.stored]
        self.stored.update({p.invoice_id: _copy(p) for p in new})
        return [p.invoice_id for p in new]

    async def save(self, payment: Payment, events: Sequence[Envelope]) -> None:
        if self.stored[payment.invoice_id].version != payment.version - 1:
            raise VersionConflict(payment.invoice_id)
        self.stored[payment.invoice_id] = _copy(payment)
        self.events.extend(events)

    async def pending(self, *, since_before: datetime, limit: int) -> list[str]:
        return [
            p.invoice_id
            for p in self.stored.values()
            if (p.pending_attempt() or p.refund_due()) and p.updated_at < since_before
        ][:limit]


def _copy(payment: Payment) -> Payment:
    import copy

    return copy.deepcopy(payment)


class FakeVault:
    def __init__(self) -> None:
        self.cards: dict[str, StoredCard] = {}

    async def add_placed(self, cards: Sequence[PlacedCard]) -> None:
        for card in cards:
            self.cards.setdefault(
                card.order_id, StoredCard(card.seller_id, card.card_token, card.brand, card.last4)
            )

    async def add_split(self, links: Sequence[tuple[str, str, str]]) -> None:
        for child, parent, _ in links:
            if parent in self.cards:
                self.cards.setdefault(child, self.cards[parent])

    async def card_for(self, order_id: str) -> StoredCard | None:
        return self.cards.get(order_id)

    async def forget(self, seller_id: str, order_ids: Sequence[str]) -> None:
        for order_id in order_ids:
            if (card := self.cards.get(order_id)) is not None and card.seller_id == seller_id:
                del self.cards[order_id]


class Processor:
    def __init__(self) -> None:
        self.requests: list[ChargeRequest] = []

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        self.requests.append(request)
        return ChargeResult(approved=True, processor_ref=f"ch-{request.idempotency_key}")

    async def refund(self, request: RefundRequest) -> RefundResult:
        raise AssertionError(f"nothing here is voided, yet {request} was sent")


class Jobs:
    """Keeps submitted jobs instead of running them: a test runs them, or 'crashes' first."""

    def __init__(self) -> None:
        self.queued: dict[str, Job] = {}

    def submit(self, key: str, job: Job) -> bool:
        self.queued.setdefault(key, job)
        return True

    async def run_all(self) -> None:
        queued, self.queued = self.queued, {}
        for job in queued.values():
            await job()


async def _no_sleep(_: float) -> None:
    return None


def handlers() -> tuple[PaymentsHandlers, FakePayments, Processor, Jobs]:
    payments, processor, jobs = FakePayments(), Processor(), Jobs()
    built = PaymentsHandlers(
        payments=payments,
        vault=FakeVault(),
        processor=processor,
        scheduler=jobs,
        card_waits=(0.1,),
        clock=lambda: NOW,
        sleep=_no_sleep,
    )
    return built, payments, processor, jobs


async def card_invoice(built: PaymentsHandlers) -> InvoiceIssued:
    order = placed_order(seller_id="seller-1")
    await CardKeeping(built.vault).record_placed_cards([order])
    return invoice_issued(order, invoice_id="inv-1")


async def test_an_attempt_left_pending_by_a_crash_is_charged_again_with_its_stored_key() -> None:
    built, payments, processor, jobs = handlers()
    await built.on_invoices_issued([await card_invoice(built)])
    jobs.queued.clear()  # the process dies before the charge runs

    assert await built.resume_pending(older_than=timedelta(0)) == 0  # not older than now
    built.clock = lambda: NOW + timedelta(minutes=5)
    assert await built.resume_pending(older_than=timedelta(minutes=1)) == 1
    await jobs.run_all()

    assert [r.idempotency_key for r in processor.requests] == ["inv-1:1"]
    assert [e.type for e in payments.events] == ["payment.succeeded"]


async def test_a_redelivered_invoice_adds_no_attempt_and_charges_nothing_new() -> None:
    built, payments, processor, jobs = handlers()
    invoice = await card_invoice(built)
    await built.on_invoices_issued([invoice, invoice])
    await jobs.run_all()
    await built.on_invoices_issued([invoice])
    await jobs.run_all()

    assert [a.attempt for a in payments.stored["inv-1"].attempts] == [1]
    assert [r.idempotency_key for r in processor.requests] == ["inv-1:1"]
    assert len(payments.events) == 1


async def test_a_redelivery_while_pending_resumes_with_the_same_key() -> None:
    built, _, processor, jobs = handlers()
    invoice = await card_invoice(built)
    await built.on_invoices_issued([invoice])
    jobs.queued.clear()  # crashed before charging; the offset was not committed
    await built.on_invoices_issued([invoice])
    await jobs.run_all()

    assert [r.idempotency_key for r in processor.requests] == ["inv-1:1"]


async def test_no_card_in_the_vault_fails_the_attempt_as_retryable_without_charging() -> None:
    built, payments, processor, jobs = handlers()
    order = placed_order(seller_id="seller-1")  # never reached the vault
    await built.on_invoices_issued([invoice_issued(order, invoice_id="inv-1")])
    await jobs.run_all()

    attempt = payments.stored["inv-1"].last_attempt
    assert (attempt.status.value, attempt.reason, attempt.retryable) == (
        "failed",
        "card_unavailable",
        True,
    )
    assert processor.requests == []


class CountingPayments(FakePayments):
    """Keeps what each write stored, so a test sees what a crash after it would leave."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[Payment] = []

    async def add_new(self, payments: Sequence[tuple[Payment, str]]) -> list[str]:
        self.writes += [_copy(p) for p, _ in payments]
        return await super().add_new(payments)

    async def save(self, payment: Payment, events: Sequence[Envelope]) -> None:
        await super().save(payment, events)
        self.writes.append(_copy(payment))


async def test_a_card_already_in_the_vault_is_charged_with_one_write_after_the_insert() -> None:
    built, _, processor, jobs = handlers()
    payments = built.payments = CountingPayments()
    await built.on_invoices_issued([await card_invoice(built)])
    inserted = payments.writes[0].last_attempt
    await jobs.run_all()

    # The insert itself says the charge may be on its way (a crash after it resends the same
    # key); the only other write is the outcome.
    assert (inserted.status.value, inserted.sent_at) == ("pending", NOW)
    assert [w.last_attempt.status.value for w in payments.writes] == ["pending", "succeeded"]
    assert [r.idempotency_key for r in processor.requests] == ["inv-1:1"]


async def test_a_card_that_reaches_the_vault_late_is_marked_sent_before_its_charge() -> None:
    built, _, processor, jobs = handlers()
    payments = built.payments = CountingPayments()
    order = placed_order(seller_id="seller-1")
    await built.on_invoices_issued([invoice_issued(order, invoice_id="inv-1")])
    await CardKeeping(built.vault).record_placed_cards([order])
    await jobs.run_all()

    assert [w.last_attempt.sent_at for w in payments.writes] == [None, NOW, NOW]
    assert [r.idempotency_key for r in processor.requests] == ["inv-1:1"]


async def test_a_charge_the_runner_could_not_take_is_made_by_the_pending_scan_once() -> None:
    built, payments, processor, jobs = handlers()
    invoice = await card_invoice(built)
    taken = jobs.submit

    def full(key: str, job: Job) -> bool:
        return False  # the runner's queue is full

    jobs.submit = full  # type: ignore[method-assign]
    await built.on_invoices_issued([invoice])
    assert processor.requests == []

    jobs.submit = taken  # type: ignore[method-assign]
    built.clock = lambda: NOW + timedelta(minutes=5)
    assert await built.resume_pending(older_than=timedelta(minutes=1)) == 1
    await jobs.run_all()

    assert [r.idempotency_key for r in processor.requests] == ["inv-1:1"]
    assert payments.stored["inv-1"].status.value == "succeeded"

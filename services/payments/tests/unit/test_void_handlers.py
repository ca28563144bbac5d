"""Voids on fakes: no charge after a void, a refund after a charge, the refund made once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from juniper_shared.contracts.events import InvoiceIssued, InvoiceVoided, InvoiceVoidedData
from juniper_testkit import placed_order
from payments.application.cards import CardKeeping
from payments.application.handlers import PaymentsHandlers
from payments.application.ports import (
    ChargeRequest,
    ChargeResult,
    ProcessorUnavailable,
    RefundRequest,
    RefundResult,
)
from payments.domain.errors import InvalidState

from ..builders import invoice_issued
from .test_charging_handlers import NOW, FakePayments, FakeVault, Jobs, _no_sleep, card_invoice


class Processor:
    """Approves every charge; `during_charge` runs while a charge is at the processor."""

    def __init__(self) -> None:
        self.charges: list[ChargeRequest] = []
        self.refunds: list[RefundRequest] = []
        self.refunded: dict[str, str] = {}
        self.during_charge: Callable[[], Awaitable[None]] | None = None
        self.unavailable_refunds = 0

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        self.charges.append(request)
        if self.during_charge is not None:
            await self.during_charge()
        return ChargeResult(approved=True, processor_ref=f"ch-{request.idempotency_key}")

    async def refund(self, request: RefundRequest) -> RefundResult:
        self.refunds.append(request)
        if self.unavailable_refunds:
            self.unavailable_refunds -= 1
            raise ProcessorUnavailable("503 after 5 calls")
        ref = self.refunded.setdefault(request.idempotency_key, f"re-{len(self.refunded) + 1}")
        return RefundResult(refund_ref=ref)


def voided(issued: InvoiceIssued) -> InvoiceVoided:
    data = issued.data
    return InvoiceVoided(
        producer="invoicing",
        seller_id=issued.seller_id,
        data=InvoiceVoidedData(
            invoice_id=data.invoice_id,
            number=data.number,
            order_id=data.order_id,
            buyer=data.buyer,
            url=data.url,
            amount=data.amount,
            currency=data.currency,
            voided_at=NOW,
        ),
    )


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


async def test_an_invoice_voided_before_its_charge_ran_is_never_charged() -> None:
    built, payments, processor, jobs = handlers()
    issued = await card_invoice(built)
    await built.on_invoices_issued([issued])  # the charge is queued...
    await built.on_invoices_voided([voided(issued)])  # ...and the void lands first
    await jobs.run_all()

    assert processor.charges == []
    assert processor.refunds == []
    assert payments.stored["inv-1"].status.value == "voided"
    assert payments.events == []
    with pytest.raises(InvalidState):
        await built.retry("seller-1", "inv-1")


async def test_a_void_arriving_while_the_card_is_looked_up_stops_the_charge() -> None:
    built, payments, processor, jobs = handlers()
    order = placed_order(seller_id="seller-1")
    issued = invoice_issued(order, invoice_id="inv-1")
    await built.on_invoices_issued([issued])  # before the card reached the vault
    await CardKeeping(built.vault).record_placed_cards([order])
    vault = built.vault
    assert isinstance(vault, FakeVault)
    real_card_for = vault.card_for

    async def card_for_then_void(order_id: str) -> object:
        card = await real_card_for(order_id)
        await built.on_invoices_voided([voided(issued)])
        return card

    vault.card_for = card_for_then_void  # type: ignore[method-assign,assignment]
    await jobs.run_all()

    assert processor.charges == []
    assert payments.stored["inv-1"].status.value == "voided"


async def test_a_charge_that_succeeded_is_refunded_once_with_its_derived_key() -> None:
    built, payments, processor, jobs = handlers()
    issued = await card_invoice(built)
    await built.on_invoices_issued([issued])
    await jobs.run_all()
    await built.on_invoices_voided([voided(issued), voided(issued)])  # delivered twice
    await jobs.run_all()
    await built.on_invoices_voided([voided(issued)])  # and once more, later
    await jobs.run_all()

    assert [r.idempotency_key for r in processor.charges] == ["inv-1:1"]
    assert [(r.charge_ref, r.idempotency_key) for r in processor.refunds] == [
        ("ch-inv-1:1", "inv-1:1:refund")
    ]
    assert [e.type for e in payments.events] == ["payment.succeeded", "payment.refunded"]
    refunded = payments.events[-1].model_dump(mode="json")["data"]
    assert (refunded["attempt"], refunded["processor_ref"], refunded["refund_ref"]) == (
        1,
        "ch-inv-1:1",
        "re-1",
    )
    assert refunded["amount"] == str(issued.data.amount)


async def test_a_charge_in_flight_when_the_void_lands_is_refunded_after_it_succeeds() -> None:
    built, payments, processor, jobs = handlers()
    issued = await card_invoice(built)
    await built.on_invoices_issued([issued])

    async def void_now() -> None:
        await built.on_invoices_voided([voided(issued)])

    processor.during_charge = void_now
    await jobs.run_all()
    await jobs.run_all()  # the refund the void scheduled finds it done

    assert len(processor.charges) == 1
    assert [r.idempotency_key for r in processor.refunds] == ["inv-1:1:refund"]
    assert [e.type for e in payments.events] == ["payment.succeeded", "payment.refunded"]
    assert payments.stored["inv-1"].refund_due() is None


async def test_a_refund_the_processor_could_not_take_is_made_later_with_the_same_key() -> None:
    built, payments, processor, jobs = handlers()
    issued = await card_invoice(built)
    await built.on_invoices_issued([issued])
    await jobs.run_all()
    processor.unavailable_refunds = 1
    await built.on_invoices_voided([voided(issued)])
    await jobs.run_all()
    assert payments.stored["inv-1"].refund_due() is not None  # still owed

    built.clock = lambda: NOW + timedelta(minutes=5)
    assert await built.resume_pending(older_than=timedelta(minutes=1)) == 1
    await jobs.run_all()

    assert [r.idempotency_key for r in processor.refunds] == ["inv-1:1:refund"] * 2
    assert [e.type for e in payments.events] == ["payment.succeeded", "payment.refunded"]


async def test_an_invoice_voided_in_the_batch_that_issued_it_is_never_charged() -> None:
    built, payments, processor, jobs = handlers()
    issued = await card_invoice(built)
    await built.on_invoices_issued([issued], voided={"inv-1"})
    await jobs.run_all()  # anything queued runs before the void, as it may in a process
    await built.on_invoices_voided([voided(issued)])
    await jobs.run_all()

    assert processor.charges == []
    assert payments.stored["inv-1"].status.value == "voided"

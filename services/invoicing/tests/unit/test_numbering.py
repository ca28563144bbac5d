"""Gapless numbering: a number is taken by the invoice's own write, which a unique index
refuses when another invoice holds it; a crash anywhere leaves nothing to settle."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from invoicing.application.numbering import Numbering
from invoicing.application.ports import NumberTaken
from invoicing.domain.errors import InvalidShipping
from invoicing.domain.invoice import Invoice, InvoiceStatus, Shipping, draft_invoice
from invoicing.domain.order import InvoiceableOrder, OrderLine
from invoicing.entrypoints.schemas import invoice_view
from juniper_shared.contracts.events import Envelope

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
T = TypeVar("T")


# --- the confirm handler on in-memory stores, with crashes injected at every step ----------


class Crash(BaseException):
    """Stands in for the process dying: nothing after it runs."""


class Stores:
    def __init__(self) -> None:
        self.invoices: dict[str, Invoice] = {}
        self.issued_events: list[tuple[str, str]] = []
        self.writes = 0
        self.highest_reads = 0


class FakeOrders:
    def __init__(self, orders: dict[str, InvoiceableOrder]) -> None:
        self._orders = orders

    async def get(self, order_id: str) -> InvoiceableOrder | None:
        return self._orders.get(order_id)

    async def apply(self, orders: Sequence[InvoiceableOrder]) -> int:
        raise NotImplementedError


def read_through(
    recent: dict[str, T], stored: dict[str, T], key: str, *, use_recent: bool
) -> T | None:
    """One process's read: its own copy when asked and held (maybe stale), else the stored
    document, which it then keeps; the caller gets a fresh copy."""
    found = recent.get(key) if use_recent else None
    found = found or stored.get(key)
    if found is None:
        return None
    recent[key] = found
    return copy.copy(found)


class FakeInvoices:
    """One process's view: its recent copies go stale when another process writes.

    `crash_at` makes the process die at one step of a confirm: `number_chosen`, when the write
    of a numbered invoice is about to go out, or `invoice_numbered`, right after it landed."""

    def __init__(self, stores: Stores, *, crash_at: str | None = None) -> None:
        self._s = stores
        self._recent: dict[str, Invoice] = {}
        self._crash_at = crash_at

    async def get(self, invoice_id: str, *, recent: bool = False) -> Invoice | None:
        return read_through(self._recent, self._s.invoices, invoice_id, use_recent=recent)

    def kept(self, invoice_id: str) -> Invoice | None:
        found = self._recent.get(invoice_id)
        return copy.copy(found) if found is not None else None

    async def for_order(self, seller_id: str, order_id: str) -> list[Invoice]:
        raise NotImplementedError

    async def save(
        self, invoice: Invoice, events: Sequence[Envelope], *, previous_version: int
    ) -> bool:
        await asyncio.sleep(0)
        numbered = invoice.sequence is not None
        if numbered and self._crash_at == "number_chosen":
            raise Crash(self._crash_at)
        self._s.writes += 1
        stored = self._s.invoices.get(invoice.invoice_id)
        if (stored.version if stored else 0) != previous_version:
            self._recent.pop(invoice.invoice_id, None)
            return False
        if invoice.sequence is not None and any(
            other.seller_id == invoice.seller_id
            and other.sequence == invoice.sequence
            and other.invoice_id != invoice.invoice_id
            for other in self._s.invoices.values()
        ):
            self._recent.pop(invoice.invoice_id, None)
            raise NumberTaken(invoice.invoice_id)  # the unique index
        self._s.invoices[invoice.invoice_id] = Invoice(**invoice.__dict__)
        self._recent[invoice.invoice_id] = self._s.invoices[invoice.invoice_id]
        self._s.issued_events += [(e.data.invoice_id, e.data.number) for e in events]
        if numbered and self._crash_at == "invoice_numbered":
            raise Crash(self._crash_at)
        return True

    async def highest_number(self, seller_id: str) -> int:
        await asyncio.sleep(0)
        self._s.highest_reads += 1
        held = [i.sequence for i in self._s.invoices.values() if i.seller_id == seller_id]
        return max((n for n in held if n is not None), default=0)


def approved(order_id: str) -> InvoiceableOrder:
    address = {"name": "A", "line1": "1 St", "city": "C", "postal_code": "1", "country": "US"}
    return InvoiceableOrder(
        order_id=order_id,
        seller_id="seller-1",
        status="approved",
        version=2,
        currency="USD",
        placed_at=NOW,
        buyer={"id": "b", "name": "Ada", "email": "ada@example.com"},
        lines=(OrderLine("MUG", "Mug", 1250, 2),),
        shipping_address=address,
        billing_address=address,
        payment_method={"type": "other"},
    )


def world(count: int) -> tuple[Stores, FakeOrders, list[str]]:
    stores = Stores()
    orders = {f"o{i}": approved(f"o{i}") for i in range(count)}
    shipping = Shipping("UPS", "1Z", date(2026, 11, 27), 500)
    for order in orders.values():
        invoice = draft_invoice(order, shipping, now=NOW)
        invoice.version = 1
        stores.invoices[invoice.invoice_id] = invoice
    return stores, FakeOrders(orders), [f"inv-o{i}" for i in range(count)]


def handlers(stores: Stores, orders: FakeOrders, *, crash_at: str | None = None) -> Numbering:
    return Numbering(
        orders=orders,
        invoices=FakeInvoices(stores, crash_at=crash_at),
        base_url="http://invoicing",
        clock=lambda: NOW,
    )


def numbers(stores: Stores) -> list[int]:
    return sorted(i.sequence for i in stores.invoices.values() if i.sequence is not None)


async def test_concurrent_confirms_take_numbers_one_to_n() -> None:
    stores, orders, ids = world(20)
    service = handlers(stores, orders)
    confirmed = await asyncio.gather(*(service.confirm("seller-1", i) for i in ids))
    assert sorted(invoice.number or "" for invoice in confirmed) == [
        f"INV-{n:06d}" for n in range(1, 21)
    ]
    assert len(stores.issued_events) == 20


async def test_two_processes_racing_for_one_sellers_numbers_leave_no_gap() -> None:
    stores, orders, ids = world(12)
    first, second = handlers(stores, orders), handlers(stores, orders)
    await asyncio.gather(
        *(
            service.confirm("seller-1", i)
            for service, i in zip(itertools.cycle((first, second)), ids)
        )
    )
    assert numbers(stores) == list(range(1, 13))
    assert len(stores.issued_events) == 12


async def test_confirming_twice_is_one_invoice_with_one_number() -> None:
    stores, orders, ids = world(1)
    service = handlers(stores, orders)
    first = await service.confirm("seller-1", ids[0])
    again = await service.confirm("seller-1", ids[0])
    assert first.number == again.number == "INV-000001"
    assert stores.issued_events == [(ids[0], "INV-000001")]


async def test_each_confirm_is_one_write_once_the_process_knows_the_sellers_highest() -> None:
    stores, orders, ids = world(4)
    service = handlers(stores, orders)
    for invoice_id in ids:
        await service.confirm("seller-1", invoice_id)
    assert numbers(stores) == [1, 2, 3, 4]
    assert (stores.writes, stores.highest_reads) == (4, 1)


async def test_a_number_another_process_took_is_read_again_and_the_next_one_taken() -> None:
    stores, orders, ids = world(3)
    first, second = handlers(stores, orders), handlers(stores, orders)
    assert (await first.confirm("seller-1", ids[0])).number == "INV-000001"
    assert (await second.confirm("seller-1", ids[1])).number == "INV-000002"
    # `first` still believes 1 is the highest: 2 is refused, it reads 2, and takes 3.
    assert (await first.confirm("seller-1", ids[2])).number == "INV-000003"
    assert numbers(stores) == [1, 2, 3]


@pytest.mark.parametrize("step", ["number_chosen", "invoice_numbered"])
@pytest.mark.parametrize("recover", ["retry", "other_invoice"])
async def test_a_crash_at_any_step_leaves_no_gap(step: str, recover: str) -> None:
    stores, orders, ids = world(3)
    with pytest.raises(Crash):
        await handlers(stores, orders, crash_at=step).confirm("seller-1", ids[0])
    # Either the write landed, number and event together, or nothing did.
    numbered = step == "invoice_numbered"
    assert numbers(stores) == ([1] if numbered else [])
    assert len(stores.issued_events) == (1 if numbered else 0)
    restarted = handlers(stores, orders)
    if recover == "other_invoice":
        expected = "INV-000002" if numbered else "INV-000001"
        assert (await restarted.confirm("seller-1", ids[1])).number == expected
    for invoice_id in ids:
        await restarted.confirm("seller-1", invoice_id)
    assert numbers(stores) == [1, 2, 3]
    assert sorted(n for _, n in stores.issued_events) == ["INV-000001", "INV-000002", "INV-000003"]


@settings(max_examples=25, deadline=None)
@given(
    crashes=st.lists(
        st.sampled_from([None, "number_chosen", "invoice_numbered"]), min_size=1, max_size=8
    )
)
def test_any_sequence_of_crashes_still_numbers_gaplessly(crashes: list[str | None]) -> None:
    async def story() -> None:
        stores, orders, ids = world(len(crashes))
        for invoice_id, crash in zip(ids, crashes, strict=True):
            with contextlib.suppress(Crash):
                await handlers(stores, orders, crash_at=crash).confirm("seller-1", invoice_id)
        # A confirm that died before its write left its invoice a draft; the rest are gapless.
        assert numbers(stores) == list(range(1, len(numbers(stores)) + 1))
        restarted = handlers(stores, orders)
        for invoice_id in ids:
            await restarted.confirm("seller-1", invoice_id)
        assert numbers(stores) == list(range(1, len(crashes) + 1))
        assert len(stores.issued_events) == len(crashes)

    asyncio.run(story())


# --- a confirm either issues or takes no number ----------------------------------------------

OVER_THE_CAP = Shipping("UPS", "1Z", date(2026, 11, 27), 99_999_999_999)
"""999,999,999.99 USD of shipping: in range alone, past the cap with any line."""


def poisoned(stores: Stores, invoice_id: str) -> None:
    """A draft whose total is past the cap, as a preview stored them before it was checked."""
    stores.invoices[invoice_id].shipping = OVER_THE_CAP


async def test_a_draft_past_the_amount_cap_is_refused_before_any_number_is_taken() -> None:
    stores, orders, ids = world(2)
    poisoned(stores, ids[0])
    service = handlers(stores, orders)
    with pytest.raises(InvalidShipping, match="total"):
        await service.confirm("seller-1", ids[0])
    assert stores.writes == 0
    assert (await service.confirm("seller-1", ids[1])).number == "INV-000001"
    assert stores.invoices[ids[0]].status is InvoiceStatus.DRAFT
    assert stores.issued_events == [(ids[1], "INV-000001")]


class FailingWrite(Exception):
    pass


async def test_a_confirm_whose_write_failed_takes_no_number() -> None:
    stores, orders, ids = world(2)
    service = handlers(stores, orders)
    save = service.invoices.save
    failures = iter([True])

    async def failing_once(
        invoice: Invoice, events: Sequence[Envelope], *, previous_version: int
    ) -> bool:
        if events and next(failures, False):
            raise FailingWrite("the write did not happen")
        return await save(invoice, events, previous_version=previous_version)

    service.invoices.save = failing_once  # type: ignore[method-assign]
    with pytest.raises(FailingWrite):
        await service.confirm("seller-1", ids[0])
    assert stores.invoices[ids[0]].status is InvoiceStatus.DRAFT
    assert stores.issued_events == []
    # Nothing was issued by the failed confirm; the next ones number from 1, without a gap.
    assert (await service.confirm("seller-1", ids[1])).number == "INV-000001"
    assert (await service.confirm("seller-1", ids[0])).number == "INV-000002"


def test_a_stored_draft_past_the_amount_cap_can_still_be_read() -> None:
    """Drafts stored before the cap was checked are shown as they are, never a 500."""
    stores, _, ids = world(1)
    poisoned(stores, ids[0])
    shown = invoice_view(stores.invoices[ids[0]], url="http://invoicing/doc").model_dump(
        mode="json"
    )
    assert (shown["shipping_cost"], shown["total"]) == ("999999999.99", "1000000024.99")

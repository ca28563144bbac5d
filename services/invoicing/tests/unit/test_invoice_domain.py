"""The invoice's story with no I/O: draft from an approved order, totals, due dates, payment."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from invoicing.domain.errors import InvalidShipping, InvalidState, NotInvoiceable
from invoicing.domain.invoice import (
    Invoice,
    InvoiceStatus,
    PaymentFailure,
    PaymentStatus,
    Shipping,
    draft_invoice,
    due_date,
    format_number,
)
from invoicing.domain.order import InvoiceableOrder, OrderLine, newest

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SHIPPED = date(2026, 11, 27)
ADDRESS = {
    "name": "Maple & Co",
    "line1": "12 Harbour St",
    "city": "Portland",
    "postal_code": "97201",
    "country": "US",
}
CARD = {"type": "credit_card", "brand": "visa", "last4": "4242"}


def order(
    *, status: str = "approved", version: int = 2, payment_method: dict[str, object] | None = None
) -> InvoiceableOrder:
    return InvoiceableOrder(
        order_id="ord-1",
        seller_id="seller-1",
        seller_name="Juniper Pottery",
        status=status,
        version=version,
        currency="USD",
        placed_at=NOW,
        buyer={"id": "b-1", "name": "Ada", "email": "ada@example.com", "company": "Maple"},
        lines=(OrderLine("MUG", "Mug", 1250, 4), OrderLine("POT", "Teapot", 3999, 1)),
        shipping_address=ADDRESS,
        billing_address=ADDRESS,
        payment_method=payment_method or CARD,
    )


def shipping(cost: int = 1500) -> Shipping:
    return Shipping(carrier="UPS", tracking_number="1Z999", shipped_at=SHIPPED, shipping_cost=cost)


def issued() -> Invoice:
    invoice = draft_invoice(order(), shipping(), now=NOW)
    invoice.issue(7, now=NOW)
    return invoice


def test_a_draft_totals_the_lines_and_shipping_exactly() -> None:
    invoice = draft_invoice(order(), shipping(), now=NOW)
    assert invoice.invoice_id == "inv-ord-1"
    assert (invoice.status, invoice.payment_status) == (InvoiceStatus.DRAFT, PaymentStatus.NONE)
    assert invoice.number is None
    assert invoice.subtotal == 5000 + 3999
    assert invoice.total == 5000 + 3999 + 1500


@given(
    prices=st.lists(st.integers(0, 10**9), min_size=1, max_size=20),
    quantities=st.lists(st.integers(1, 100_000), min_size=20, max_size=20),
    cost=st.integers(0, 10**6),
)
def test_totals_are_exact_sums_in_minor_units(
    prices: list[int], quantities: list[int], cost: int
) -> None:
    lines = tuple(
        OrderLine(f"S{i}", "x", p, q)
        for i, (p, q) in enumerate(zip(prices, quantities, strict=False))
    )
    base = order()
    placed = InvoiceableOrder(**{**base.__dict__, "lines": lines})
    expected = sum(p * q for p, q in zip(prices, quantities, strict=False)) + cost
    if expected >= CAP_IN_CENTS:
        # Amounts each in range whose sum is not: refused, naming the amount.
        with pytest.raises(InvalidShipping, match=r"line_total|subtotal|total"):
            draft_invoice(placed, shipping(cost), now=NOW)
        return
    invoice = draft_invoice(placed, shipping(cost), now=NOW)
    assert invoice.total == expected


CAP_IN_CENTS = 100_000_000_000
"""1,000,000,000 USD: no amount of an invoice reaches it."""


@pytest.mark.parametrize(
    ("prices", "quantities", "cost", "field"),
    [
        ([99_999_999_999], [2], 0, "lines[0].line_total"),
        ([60_000_000_000, 50_000_000_000], [1, 1], 0, "subtotal"),
        ([1000], [1], 99_999_999_999, "total"),
        ([1000], [1], CAP_IN_CENTS, "shipping.shipping_cost"),
    ],
)
def test_a_draft_whose_amounts_add_up_past_the_cap_is_refused_naming_the_amount(
    prices: list[int], quantities: list[int], cost: int, field: str
) -> None:
    lines = tuple(
        OrderLine(f"S{i}", "x", p, q)
        for i, (p, q) in enumerate(zip(prices, quantities, strict=True))
    )
    placed = InvoiceableOrder(**{**order().__dict__, "lines": lines})
    with pytest.raises(InvalidShipping, match=re.escape(field)):
        draft_invoice(placed, shipping(cost), now=NOW)


@pytest.mark.parametrize("status", ["pending", "rejected", "cancelled"])
def test_only_approved_orders_can_be_invoiced(status: str) -> None:
    with pytest.raises(NotInvoiceable):
        draft_invoice(order(status=status), shipping(), now=NOW)


def test_net_terms_fall_due_days_after_shipping_and_a_card_on_issue() -> None:
    assert due_date({"type": "net_terms", "days": 30}, SHIPPED) == date(2026, 12, 27)
    assert due_date({"type": "net_terms", "days": 0}, SHIPPED) == SHIPPED
    assert due_date(CARD, SHIPPED) == SHIPPED
    assert due_date({"type": "other"}, SHIPPED) == SHIPPED
    net = draft_invoice(
        order(payment_method={"type": "net_terms", "days": 45}), shipping(), now=NOW
    )
    assert net.due_date == date(2027, 1, 11)


def test_previewing_again_replaces_the_draft_but_not_an_issued_invoice() -> None:
    invoice = draft_invoice(order(), shipping(), now=NOW)
    invoice.version = 3
    invoice.processed_events = ["event-1"]
    invoice.request_marks = ["key:body"]
    invoice.redraft(order(version=5), shipping(2500), now=NOW)
    assert (invoice.total, invoice.order_version, invoice.version) == (5000 + 3999 + 2500, 5, 3)
    assert (invoice.processed_events, invoice.request_marks) == (["event-1"], ["key:body"])
    invoice.issue(1, now=NOW)
    with pytest.raises(NotInvoiceable):
        invoice.redraft(order(version=5), shipping(), now=NOW)


def test_a_draft_is_confirmable_only_for_the_order_as_previewed() -> None:
    invoice = draft_invoice(order(version=2), shipping(), now=NOW)
    invoice.ensure_confirmable(order(version=2))
    with pytest.raises(InvalidState):
        invoice.ensure_confirmable(order(version=3))
    with pytest.raises(NotInvoiceable):
        invoice.ensure_confirmable(order(status="cancelled", version=3))
    with pytest.raises(NotInvoiceable):
        invoice.ensure_confirmable(None)


def test_issuing_gives_the_number_and_only_once() -> None:
    invoice = issued()
    assert (invoice.number, invoice.status, invoice.payment_status) == (
        "INV-000007",
        InvoiceStatus.ISSUED,
        PaymentStatus.PENDING,
    )
    with pytest.raises(InvalidState):
        invoice.issue(8, now=NOW)
    assert format_number(123456) == "INV-123456"


def test_a_failed_payment_then_a_success_ends_paid() -> None:
    invoice = issued()
    assert invoice.record_payment_failed(PaymentFailure("card_declined", False, 1))
    assert (invoice.status, invoice.payment_status) == (
        InvoiceStatus.PAYMENT_FAILED,
        PaymentStatus.FAILED,
    )
    assert invoice.record_payment_succeeded(at=NOW, processor_ref="ch_1")
    assert (invoice.status, invoice.payment_status) == (InvoiceStatus.PAID, PaymentStatus.PAID)


def test_nothing_changes_a_paid_invoice() -> None:
    invoice = issued()
    assert invoice.record_payment_succeeded(at=NOW, processor_ref="ch_1")
    assert not invoice.record_payment_failed(PaymentFailure("card_declined", False, 2))
    assert not invoice.record_payment_succeeded(at=NOW, processor_ref="ch_2")
    assert (invoice.status, invoice.processor_ref) == (InvoiceStatus.PAID, "ch_1")


def test_a_draft_ignores_payment_news() -> None:
    invoice = draft_invoice(order(), shipping(), now=NOW)
    assert not invoice.record_payment_succeeded(at=NOW, processor_ref="ch_1")
    assert invoice.status is InvoiceStatus.DRAFT


def test_the_read_model_keeps_the_newest_snapshot_of_each_order() -> None:
    kept = newest([order(version=3), order(version=5, status="cancelled"), order(version=4)])
    assert [(o.version, o.status) for o in kept] == [(5, "cancelled")]

"""The seller's story on one order, with no I/O: accept, reject, split, edit, cancel."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from juniper_shared.contracts.events import OrderPlacedData
from juniper_testkit import placed_order_data
from orders.domain.errors import InvalidEdit, InvalidState
from orders.domain.order import InvoiceLink, Order, PaymentStatus, Status
from orders.domain.placing import place_order

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def new_order(*, admitted: bool = True, **overrides: object) -> Order:
    data = OrderPlacedData.model_validate(placed_order_data(**overrides))
    return place_order(data, buyer_admitted=admitted, now=NOW)


def three_line_order() -> Order:
    return new_order(
        items=[
            {"sku": "MUG", "name": "Mug", "unit_price": "12.50", "quantity": 4},
            {"sku": "TEA", "name": "Tea", "unit_price": "8.00", "quantity": 2},
            {"sku": "POT", "name": "Teapot", "unit_price": "39.99", "quantity": 1},
        ],
        shipping_fee="15.00",
    )


def test_a_placed_order_waits_for_the_seller_with_exact_totals() -> None:
    order = three_line_order()
    assert order.status is Status.PENDING
    assert [line.line_id for line in order.lines] == ["L1", "L2", "L3"]
    assert order.subtotal == 5000 + 1600 + 3999
    assert order.total == order.subtotal + 1500
    assert order.payment_method == {"type": "credit_card", "brand": "visa", "last4": "4242"}


def test_a_gated_seller_rejects_an_unknown_buyer_on_arrival() -> None:
    order = new_order(admitted=False)
    assert order.status is Status.REJECTED
    assert order.rejection is not None
    assert order.rejection["reason"] == "buyer_not_approved"


def test_accept_then_cancel_and_nothing_after() -> None:
    order = three_line_order()
    order.accept(now=NOW, customer_id="cus-1")
    assert (order.status, order.customer_id) == (Status.APPROVED, "cus-1")
    with pytest.raises(InvalidState):
        order.reject(now=NOW, reason="other", message="")
    order.cancel(now=NOW, message="Buyer asked")
    assert order.status is Status.CANCELLED
    with pytest.raises(InvalidState):
        order.change_quantities({"L1": 2}, now=NOW)
    assert [entry.type for entry in order.history] == ["placed", "accepted", "cancelled"]


def test_a_pending_order_cannot_be_cancelled_and_an_invoiced_one_cannot_change() -> None:
    order = three_line_order()
    with pytest.raises(InvalidState):
        order.cancel(now=NOW, message="")
    order.accept(now=NOW, customer_id=None)
    order.link_invoice(InvoiceLink("inv-1", "INV-000001", "issued", "http://x/inv-1"), now=NOW)
    with pytest.raises(InvalidState, match="invoiced"):
        order.cancel(now=NOW, message="")
    with pytest.raises(InvalidState, match="invoiced"):
        order.remove_lines(["L1"], now=NOW)
    assert order.payment_status is PaymentStatus.PENDING


def test_changing_quantities_recomputes_line_totals_subtotal_and_total() -> None:
    order = three_line_order()
    order.change_quantities({"L1": 10, "L3": 3}, now=NOW)
    assert [line.quantity for line in order.lines] == [10, 2, 3]
    assert order.subtotal == 12500 + 1600 + 11997
    assert order.total == order.subtotal + 1500


@pytest.mark.parametrize(
    ("quantities", "message"),
    [({"L9": 1}, "no such line"), ({"L1": 0}, "at least 1"), ({}, "at least one line")],
)
def test_bad_quantity_changes_are_refused(quantities: dict[str, int], message: str) -> None:
    order = three_line_order()
    with pytest.raises(InvalidEdit, match=message):
        order.change_quantities(quantities, now=NOW)
    assert order.subtotal == 10599


def test_removing_items_never_leaves_an_order_empty() -> None:
    order = three_line_order()
    order.remove_lines(["L2"], now=NOW)
    assert [line.line_id for line in order.lines] == ["L1", "L3"]
    with pytest.raises(InvalidEdit, match="no items"):
        order.remove_lines(["L1", "L3"], now=NOW)


def test_split_moves_lines_into_a_new_pending_order() -> None:
    order = three_line_order()
    order.accept(now=NOW, customer_id="cus-1")
    child = order.split(["L2", "L3"], now=NOW)
    assert child.order_id == f"{order.order_id}-1"
    assert (child.status, child.split_from, child.customer_id) == (
        Status.PENDING,
        order.order_id,
        "cus-1",
    )
    assert [line.line_id for line in child.lines] == ["L2", "L3"]
    assert [line.line_id for line in order.lines] == ["L1"]
    assert order.split_into == [child.order_id]
    assert order.subtotal + child.subtotal == 10599
    assert child.shipping_fee == 0
    with pytest.raises(InvalidEdit, match="at least one item"):
        order.split(["L1"], now=NOW)


line_strategy = st.lists(
    st.tuples(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=1000)),
    min_size=2,
    max_size=20,
)


def order_with(lines: list[tuple[int, int]]) -> Order:
    return new_order(
        items=[
            {
                "sku": f"S{i}",
                "name": f"Item {i}",
                "unit_price": f"{cents // 100}.{cents % 100:02d}",
                "quantity": qty,
            }
            for i, (cents, qty) in enumerate(lines)
        ]
    )


@given(lines=line_strategy, data=st.data())
def test_a_split_keeps_every_cent(lines: list[tuple[int, int]], data: st.DataObject) -> None:
    order = order_with(lines)
    original = order.subtotal
    ids = [line.line_id for line in order.lines]
    moving = data.draw(
        st.lists(st.sampled_from(ids), min_size=1, max_size=len(ids) - 1, unique=True)
    )
    child = order.split(moving, now=NOW)
    assert order.subtotal + child.subtotal == original
    assert order.lines
    assert child.lines
    assert original == sum(cents * qty for cents, qty in lines)


@given(lines=line_strategy, data=st.data())
def test_edits_keep_totals_exact_and_orders_non_empty(
    lines: list[tuple[int, int]], data: st.DataObject
) -> None:
    order = order_with(lines)
    ids = [line.line_id for line in order.lines]
    removing = data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=len(ids), unique=True))
    if len(removing) == len(ids):
        with pytest.raises(InvalidEdit):
            order.remove_lines(removing, now=NOW)
    else:
        order.remove_lines(removing, now=NOW)
    assert order.lines
    new_quantity = data.draw(st.integers(min_value=1, max_value=1000))
    order.change_quantities({order.lines[0].line_id: new_quantity}, now=NOW)
    assert order.subtotal == sum(line.unit_price * line.quantity for line in order.lines)
    assert order.lines[0].line_total == order.lines[0].unit_price * new_quantity


CAP = 100_000_000_000
"""1,000,000,000.00 USD in cents: no line total, subtotal or total reaches it."""


@given(
    prices=st.lists(st.integers(1, 99_999_999_999), min_size=1, max_size=4),
    quantities=st.lists(st.integers(1, 100_000), min_size=4, max_size=4),
)
def test_a_quantity_change_never_takes_an_amount_past_the_cap(
    prices: list[int], quantities: list[int]
) -> None:
    assume(sum(prices) < CAP)  # placeable: the contract refuses the rest (contract tests)
    order = new_order(
        items=[
            {"sku": f"S{n}", "name": "x", "unit_price": f"{p // 100}.{p % 100:02d}", "quantity": 1}
            for n, p in enumerate(prices)
        ]
    )
    before = (order.lines, order.version, len(order.history))
    changes = {line.line_id: q for line, q in zip(order.lines, quantities, strict=False)}
    wanted = sum(line.unit_price * changes[line.line_id] for line in order.lines)
    if all(line.unit_price * changes[line.line_id] < CAP for line in order.lines) and wanted < CAP:
        order.change_quantities(changes, now=NOW)
        assert order.total == wanted
    else:
        with pytest.raises(InvalidEdit, match=r"line_total|subtotal|total"):
            order.change_quantities(changes, now=NOW)
        assert (order.lines, order.version, len(order.history)) == before

"""Contract events for the notifications tests, built from `juniper_testkit.placed_order`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from juniper_shared.contracts.common import OrderLine, OrderSnapshot, summarize_payment_method
from juniper_shared.contracts.events import (
    InvoiceIssued,
    InvoiceIssuedData,
    InvoicePaid,
    InvoicePaidData,
    InvoicePaymentFailed,
    InvoicePaymentFailedData,
    InvoiceVoided,
    InvoiceVoidedData,
    OrderAccepted,
    OrderAcceptedData,
    OrderCancelled,
    OrderCancelledData,
    OrderExpired,
    OrderExpiredData,
    OrderReceived,
    OrderReceivedData,
    OrderRejected,
    OrderRejectedData,
    OrderSplit,
    OrderSplitData,
)
from juniper_shared.contracts.events import RejectReason as Reason
from juniper_testkit import placed_order


def make_snapshot(
    *, status: str = "pending", lines: list[OrderLine] | None = None, **overrides: Any
) -> OrderSnapshot:
    """The order as the orders service would publish it, from a placed order."""
    placed = placed_order(**overrides).data
    if lines is None:
        lines = [
            OrderLine(
                line_id=f"L{number}",
                sku=item.sku,
                name=item.name,
                unit_price=item.unit_price,
                quantity=item.quantity,
                line_total=item.unit_price * item.quantity,
            )
            for number, item in enumerate(placed.items, start=1)
        ]
    subtotal = sum((line.line_total for line in lines), Decimal("0.00"))
    shipping = placed.shipping_fee or Decimal("0.00")
    return OrderSnapshot(
        order_id=placed.order_id,
        seller_id=placed.seller_id,
        seller_name=placed.seller_name,
        status=status,  # type: ignore[arg-type]
        version=2,
        placed_at=placed.placed_at,
        currency=placed.currency,
        buyer=placed.buyer,
        items=lines,
        subtotal=subtotal,
        shipping_fee=shipping,
        total=subtotal + shipping,
        shipping_address=placed.shipping_address,
        billing_address=placed.billing_address,
        payment_method=summarize_payment_method(placed.payment_method),
    )


class Events:
    """Builds each event the service reacts to, as its producer would publish it; each event
    occurs a second after the previous one, as a seller's actions would."""

    def __init__(self) -> None:
        self._now = datetime.now(UTC)

    def _next(self) -> datetime:
        self._now += timedelta(seconds=1)
        return self._now

    def received(self, order: OrderSnapshot) -> OrderReceived:
        return OrderReceived(
            producer="orders",
            occurred_at=self._next(),
            seller_id=order.seller_id,
            data=OrderReceivedData(order=order),
        )

    def rejected(
        self, order: OrderSnapshot, reason: Reason = "out_of_stock", message: str = ""
    ) -> OrderRejected:
        rejected = order.model_copy(update={"status": "rejected"})
        return OrderRejected(
            producer="orders",
            occurred_at=self._next(),
            seller_id=order.seller_id,
            data=OrderRejectedData(order=rejected, reason=reason, message=message),
        )

    def accepted(self, order: OrderSnapshot) -> OrderAccepted:
        approved = order.model_copy(update={"status": "approved"})
        return OrderAccepted(
            producer="orders",
            occurred_at=self._next(),
            seller_id=order.seller_id,
            data=OrderAcceptedData(order=approved),
        )

    def cancelled(self, order: OrderSnapshot, message: str = "") -> OrderCancelled:
        cancelled = order.model_copy(update={"status": "cancelled"})
        return OrderCancelled(
            producer="orders",
            occurred_at=self._next(),
            seller_id=order.seller_id,
            data=OrderCancelledData(order=cancelled, message=message),
        )

    def expired(self, order: OrderSnapshot) -> OrderExpired:
        expired = order.model_copy(update={"status": "expired"})
        return OrderExpired(
            producer="orders",
            occurred_at=self._next(),
            seller_id=order.seller_id,
            data=OrderExpiredData(order=expired, expires_at=order.placed_at + timedelta(days=14)),
        )

    def split(self, order: OrderSnapshot, moved: list[str]) -> OrderSplit:
        kept = [line for line in order.items if line.line_id not in moved]
        parent = snapshot_with(order, kept, order_id=order.order_id)
        new_order = snapshot_with(
            order,
            [line for line in order.items if line.line_id in moved],
            order_id=f"{order.order_id}-S1",
            split_from=order.order_id,
        )
        return OrderSplit(
            producer="orders",
            occurred_at=self._next(),
            seller_id=order.seller_id,
            data=OrderSplitData(parent=parent, new_order=new_order, moved_line_ids=moved),
        )

    def invoice_issued(
        self, order: OrderSnapshot, *, number: str = "INV-000001", card: bool = False
    ) -> InvoiceIssued:
        payment = order.payment_method if card else {"type": "net_terms", "days": 30}
        return InvoiceIssued(
            producer="invoicing",
            occurred_at=self._next(),
            seller_id=order.seller_id,
            data=InvoiceIssuedData.model_validate(
                {
                    **self._invoice(order, number),
                    "seller_id": order.seller_id,
                    "lines": [line.model_dump(exclude={"line_id"}) for line in order.items],
                    "subtotal": order.subtotal,
                    "shipping_cost": Decimal("15.00"),
                    "amount": order.subtotal + Decimal("15.00"),
                    "payment_method": payment,
                    "issued_at": datetime(2026, 11, 26, 12, tzinfo=UTC),
                    "due_date": date(2026, 12, 26),
                }
            ),
        )

    def payment_failed(
        self, order: OrderSnapshot, *, reason: str = "card_declined", number: str = "INV-000001"
    ) -> InvoicePaymentFailed:
        return InvoicePaymentFailed(
            producer="invoicing",
            occurred_at=self._next(),
            seller_id=order.seller_id,
            data=InvoicePaymentFailedData.model_validate(
                {
                    **self._invoice(order, number),
                    "amount": order.total,
                    "reason": reason,
                    "retryable": False,
                    "attempt": 1,
                }
            ),
        )

    def paid(self, order: OrderSnapshot, *, number: str = "INV-000001") -> InvoicePaid:
        return InvoicePaid(
            producer="invoicing",
            occurred_at=self._next(),
            seller_id=order.seller_id,
            data=InvoicePaidData.model_validate(
                {
                    **self._invoice(order, number),
                    "amount": order.total,
                    "paid_at": datetime(2026, 11, 27, 9, tzinfo=UTC),
                    "processor_ref": "ch_123",
                }
            ),
        )

    def voided(self, order: OrderSnapshot, *, number: str = "INV-000001") -> InvoiceVoided:
        return InvoiceVoided(
            producer="invoicing",
            occurred_at=self._next(),
            seller_id=order.seller_id,
            data=InvoiceVoidedData.model_validate(
                {
                    **self._invoice(order, number),
                    "amount": order.total,
                    "voided_at": datetime(2026, 11, 27, 10, tzinfo=UTC),
                }
            ),
        )

    def _invoice(self, order: OrderSnapshot, number: str) -> dict[str, Any]:
        invoice_id = f"inv-{order.order_id}"
        return {
            "invoice_id": invoice_id,
            "number": number,
            "order_id": order.order_id,
            "seller_name": order.seller_name,
            "buyer": order.buyer,
            "currency": order.currency,
            "url": f"http://127.0.0.1:8002/v1/invoices/{invoice_id}/document",
        }


def snapshot_with(order: OrderSnapshot, lines: list[OrderLine], **update: Any) -> OrderSnapshot:
    subtotal = sum((line.line_total for line in lines), Decimal("0.00"))
    return order.model_copy(
        update={
            "items": lines,
            "subtotal": subtotal,
            "total": subtotal + order.shipping_fee,
            **update,
        }
    )


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def snapshot() -> Callable[..., OrderSnapshot]:
    """Builds an order snapshot; keyword arguments override the placed order's fields."""
    return make_snapshot

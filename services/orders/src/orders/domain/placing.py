"""Turning a placed order from checkout into an order the seller reviews."""

from __future__ import annotations

from datetime import datetime

from juniper_shared.contracts.common import summarize_payment_method
from juniper_shared.contracts.events import OrderPlacedData
from juniper_shared.contracts.money import to_minor

from orders.domain.order import BUYER_NOT_APPROVED, HistoryEntry, Line, Order, Status


def place_order(data: OrderPlacedData, *, buyer_admitted: bool, now: datetime) -> Order:
    """A new pending order; rejected at once when a gated seller has no relationship with the buyer.

    Raises ValueError when a price is finer than the currency's minor units.
    """
    order = Order(
        order_id=data.order_id,
        seller_id=data.seller_id,
        seller_name=data.seller_name,
        status=Status.PENDING,
        placed_at=data.placed_at,
        currency=data.currency,
        buyer=data.buyer.model_dump(),
        lines=[
            Line(
                line_id=f"L{number}",
                sku=item.sku,
                name=item.name,
                unit_price=to_minor(item.unit_price, data.currency),
                quantity=item.quantity,
            )
            for number, item in enumerate(data.items, start=1)
        ],
        shipping_fee=to_minor(data.shipping_fee, data.currency) if data.shipping_fee else 0,
        shipping_address=data.shipping_address.model_dump(),
        billing_address=data.billing_address.model_dump(),
        payment_method=summarize_payment_method(data.payment_method).model_dump(),
        notes=data.notes,
        history=[HistoryEntry(data.placed_at, "placed")],
    )
    if not buyer_admitted:
        order.reject(
            now=now,
            reason=BUYER_NOT_APPROVED,
            message="This seller only sells to approved buyers.",
        )
    return order

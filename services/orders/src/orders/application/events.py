"""Integration events: the order as other services see it, built from the aggregate."""

from __future__ import annotations

import uuid
from typing import Any

from juniper_shared.contracts.common import OrderLine, OrderSnapshot
from juniper_shared.contracts.events import Envelope
from juniper_shared.contracts.money import from_minor
from juniper_shared.logs import correlation_id

from orders.domain.order import Order

PRODUCER = "orders"


def snapshot(order: Order) -> OrderSnapshot:
    def money(units: int) -> Any:
        return from_minor(units, order.currency)

    return OrderSnapshot.model_validate(
        {
            "order_id": order.order_id,
            "seller_id": order.seller_id,
            "seller_name": order.seller_name,
            "status": order.status.value,
            "version": order.version,
            "placed_at": order.placed_at,
            "currency": order.currency,
            "buyer": order.buyer,
            "customer_id": order.customer_id,
            "items": [
                OrderLine(
                    line_id=line.line_id,
                    sku=line.sku,
                    name=line.name,
                    unit_price=money(line.unit_price),
                    quantity=line.quantity,
                    line_total=money(line.line_total),
                )
                for line in order.lines
            ],
            "subtotal": money(order.subtotal),
            "shipping_fee": money(order.shipping_fee),
            "total": money(order.total),
            "shipping_address": order.shipping_address,
            "billing_address": order.billing_address,
            "payment_method": order.payment_method,
            "split_from": order.split_from,
        }
    )


def envelope(
    kind: type[Envelope],
    order: Order,
    data: Any,
    *,
    cause: Envelope | None = None,
    event_id: uuid.UUID | None = None,
) -> Envelope:
    """An event of `kind` about `order`: caused by `cause` (its correlation id), or by the
    request being served."""
    return kind(  # type: ignore[call-arg]  # `type` defaults per event class
        event_id=event_id or uuid.uuid4(),
        producer=PRODUCER,
        seller_id=order.seller_id,
        correlation_id=(cause.correlation_id if cause else "") or correlation_id.get(),
        causation_id=str(cause.event_id) if cause else None,
        data=data,
    )

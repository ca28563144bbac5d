"""Events other services publish, as payments receives them: issued invoices, splits."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from juniper_shared.contracts.common import (
    Address,
    Buyer,
    CardSummary,
    InvoiceLine,
    NetTerms,
    OrderLine,
    OrderSnapshot,
)
from juniper_shared.contracts.events import (
    InvoiceIssued,
    InvoiceIssuedData,
    OrderExpired,
    OrderExpiredData,
    OrderPlaced,
    OrderSplit,
    OrderSplitData,
)

BUYER = Buyer(id="buyer-1", name="Ada Buyer", email="ada@example.com", company="Maple & Co")
ADDRESS = Address(
    name="Maple & Co", line1="12 Harbour St", city="Portland", postal_code="97201", country="US"
)


def invoice_issued(
    order: OrderPlaced | OrderSnapshot,
    *,
    invoice_id: str | None = None,
    order_id: str | None = None,
    method: CardSummary | NetTerms | None = None,
) -> InvoiceIssued:
    """What invoicing publishes when the seller confirms an invoice for `order`."""
    data = order.data if isinstance(order, OrderPlaced) else order
    payment_method = method or CardSummary(type="credit_card", brand="visa", last4="4242")
    invoice_id = invoice_id or f"inv-{uuid.uuid4().hex[:12]}"
    lines = [
        InvoiceLine(
            sku=item.sku,
            name=item.name,
            unit_price=item.unit_price,
            quantity=item.quantity,
            line_total=item.unit_price * item.quantity,
        )
        for item in data.items
    ]
    subtotal = sum((line.line_total for line in lines), Decimal("0"))
    shipping = Decimal("5.00")
    return InvoiceIssued(
        producer="invoicing",
        seller_id=data.seller_id,
        correlation_id=f"corr-{invoice_id}",
        data=InvoiceIssuedData(
            invoice_id=invoice_id,
            number="INV-0001",
            order_id=order_id or data.order_id,
            seller_id=data.seller_id,
            buyer=BUYER,
            lines=lines,
            subtotal=subtotal,
            shipping_cost=shipping,
            amount=subtotal + shipping,
            currency=data.currency,
            payment_method=payment_method,
            issued_at=datetime.now(UTC),
            due_date=date.today(),
            url=f"http://invoicing.test/v1/invoices/{invoice_id}/document",
        ),
    )


def split_of(parent: OrderPlaced, child_id: str) -> OrderSplit:
    """The orders service's `order.split`: the last line of `parent` moved to `child_id`."""
    data = parent.data
    lines = [
        OrderLine(
            line_id=f"l{n}",
            sku=item.sku,
            name=item.name,
            unit_price=item.unit_price,
            quantity=item.quantity,
            line_total=item.unit_price * item.quantity,
        )
        for n, item in enumerate(data.items, start=1)
    ]

    def snapshot(order_id: str, order_lines: list[OrderLine], split_from: str | None) -> Any:
        total = sum((line.line_total for line in order_lines), Decimal("0"))
        return OrderSnapshot(
            order_id=order_id,
            seller_id=data.seller_id,
            status="pending",
            version=2,
            placed_at=data.placed_at,
            currency=data.currency,
            buyer=data.buyer,
            items=order_lines,
            subtotal=total,
            shipping_fee=Decimal("0"),
            total=total,
            shipping_address=ADDRESS,
            billing_address=ADDRESS,
            payment_method=CardSummary(type="credit_card", brand="visa", last4="4242"),
            split_from=split_from,
        )

    return OrderSplit(
        producer="orders",
        seller_id=data.seller_id,
        data=OrderSplitData(
            parent=snapshot(data.order_id, lines[:-1], None),
            new_order=snapshot(child_id, lines[-1:], data.order_id),
            moved_line_ids=[lines[-1].line_id],
        ),
    )


def expired_of(placed: OrderPlaced, *, split_into: list[str] | None = None) -> OrderExpired:
    """The orders service's `order.expired` for a placed order the seller never answered."""
    order = split_of(placed, f"{placed.data.order_id}-1").data.parent
    return OrderExpired(
        producer="orders",
        seller_id=placed.data.seller_id,
        data=OrderExpiredData(
            order=order.model_copy(update={"status": "expired", "version": 2}),
            expires_at=placed.data.placed_at,
            split_into=split_into or [],
        ),
    )

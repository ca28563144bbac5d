"""The read model of an order as invoicing needs it: lines and totals in integer minor units."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

APPROVED = "approved"


@dataclass(frozen=True)
class OrderLine:
    sku: str
    name: str
    unit_price: int
    """Price of one unit in the currency's minor units."""
    quantity: int

    @property
    def line_total(self) -> int:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class InvoiceableOrder:
    """The newest snapshot of one order that the orders service published."""

    order_id: str
    seller_id: str
    status: str
    version: int
    currency: str
    placed_at: datetime
    buyer: Mapping[str, Any]
    lines: tuple[OrderLine, ...]
    shipping_address: Mapping[str, Any]
    billing_address: Mapping[str, Any]
    payment_method: Mapping[str, Any]
    """Without secrets: brand and last four digits of a card at most."""
    seller_name: str | None = None

    @property
    def invoiceable(self) -> bool:
        return self.status == APPROVED


def newest(orders: Iterable[InvoiceableOrder]) -> list[InvoiceableOrder]:
    """One snapshot per order, the highest version: a batch may carry several of one order."""
    best: dict[str, InvoiceableOrder] = {}
    for order in orders:
        current = best.get(order.order_id)
        if current is None or order.version > current.version:
            best[order.order_id] = order
    return list(best.values())

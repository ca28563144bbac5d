"""How an order and a customer are stored: one document each, money as integer minor units."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from juniper_shared.mongo import Document

from orders.domain.customer import Customer
from orders.domain.order import HistoryEntry, InvoiceLink, Line, Order, PaymentStatus, Status

REQUEST_MARKS = "request_marks"
DEADLINE = "expires_at"
"""Epoch milliseconds, not a date: a seller's new window moves many deadlines with one `$inc`."""
WINDOW = "expiry_days"
"""The window a deadline was computed with, as a string: equality on strings is what our
FerretDB build answers from a btree index (juniper_shared.mongo.EXACT_PUSHDOWN)."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_millis(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_millis(millis: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=millis)


def order_to_document(order: Order) -> Document:
    return {
        "_id": order.order_id,
        "seller_id": order.seller_id,
        "seller_name": order.seller_name,
        "status": order.status.value,
        "version": order.version,
        "placed_at": order.placed_at,
        "currency": order.currency,
        "buyer": dict(order.buyer),
        "customer_id": order.customer_id,
        "items": [
            {
                "line_id": line.line_id,
                "sku": line.sku,
                "name": line.name,
                "unit_price": line.unit_price,
                "quantity": line.quantity,
            }
            for line in order.lines
        ],
        "shipping_fee": order.shipping_fee,
        "total": order.total,
        "shipping_address": dict(order.shipping_address),
        "billing_address": dict(order.billing_address),
        "payment_method": dict(order.payment_method),
        "notes": order.notes,
        "split_from": order.split_from,
        "split_into": list(order.split_into),
        "rejection": dict(order.rejection) if order.rejection else None,
        "invoice": (
            {
                "invoice_id": order.invoice.invoice_id,
                "number": order.invoice.number,
                "status": order.invoice.status,
                "url": order.invoice.url,
            }
            if order.invoice
            else None
        ),
        "payment_status": order.payment_status.value,
        "history": [
            {"at": entry.at, "type": entry.type, **entry.details} for entry in order.history
        ],
        REQUEST_MARKS: list(order.request_marks),
        # Absent rather than null: the deadline index's sort holds one type (vouched exact).
        **({DEADLINE: to_millis(order.expires_at)} if order.expires_at else {}),
        **({WINDOW: str(order.expiry_days)} if order.expiry_days else {}),
    }


def order_from_document(document: Document) -> Order:
    invoice = document.get("invoice")
    return Order(
        order_id=document["_id"],
        seller_id=document["seller_id"],
        seller_name=document.get("seller_name"),
        status=Status(document["status"]),
        version=document["version"],
        placed_at=document["placed_at"],
        currency=document["currency"],
        buyer=document["buyer"],
        customer_id=document.get("customer_id"),
        lines=[Line(**item) for item in document["items"]],
        shipping_fee=document["shipping_fee"],
        shipping_address=document["shipping_address"],
        billing_address=document["billing_address"],
        payment_method=document["payment_method"],
        notes=document.get("notes"),
        split_from=document.get("split_from"),
        split_into=list(document.get("split_into") or []),
        rejection=document.get("rejection"),
        invoice=InvoiceLink(**invoice) if invoice else None,
        payment_status=PaymentStatus(document.get("payment_status", "none")),
        history=[
            HistoryEntry(
                at=entry["at"],
                type=entry["type"],
                details={k: v for k, v in entry.items() if k not in ("at", "type")},
            )
            for entry in document.get("history") or []
        ],
        request_marks=list(document.get(REQUEST_MARKS) or []),
        expires_at=from_millis(document[DEADLINE]) if document.get(DEADLINE) else None,
        expiry_days=int(document[WINDOW]) if document.get(WINDOW) else None,
    )


def customer_to_document(customer: Customer) -> Document:
    return {
        "_id": customer.customer_id,
        "seller_id": customer.seller_id,
        "name": customer.name,
        "email": customer.email,
        "buyer_ids": list(customer.buyer_ids),
        "version": customer.version,
    }


def customer_from_document(document: Document) -> Customer:
    return Customer(
        customer_id=document["_id"],
        seller_id=document["seller_id"],
        name=document["name"],
        email=document["email"],
        buyer_ids=list(document.get("buyer_ids") or []),
        version=document.get("version", 1),
    )

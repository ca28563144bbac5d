"""How invoices and the order read model are stored: money as integer minor units."""

from __future__ import annotations

from datetime import date

from juniper_shared.inbox import PROCESSED_FIELD
from juniper_shared.keys import compound_id
from juniper_shared.mongo import Document

from invoicing.domain.invoice import Invoice, InvoiceStatus, PaymentFailure, Shipping
from invoicing.domain.order import InvoiceableOrder, OrderLine


def _line_document(line: OrderLine) -> Document:
    return {
        "sku": line.sku,
        "name": line.name,
        "unit_price": line.unit_price,
        "quantity": line.quantity,
    }


def _line(document: Document) -> OrderLine:
    return OrderLine(
        sku=document["sku"],
        name=document["name"],
        unit_price=document["unit_price"],
        quantity=document["quantity"],
    )


def order_to_document(order: InvoiceableOrder) -> Document:
    return {
        "_id": order.order_id,
        "seller_id": order.seller_id,
        "seller_name": order.seller_name,
        "status": order.status,
        "version": order.version,
        "currency": order.currency,
        "placed_at": order.placed_at,
        "buyer": dict(order.buyer),
        "items": [_line_document(line) for line in order.lines],
        "shipping_address": dict(order.shipping_address),
        "billing_address": dict(order.billing_address),
        "payment_method": dict(order.payment_method),
    }


def order_from_document(document: Document) -> InvoiceableOrder:
    return InvoiceableOrder(
        order_id=document["_id"],
        seller_id=document["seller_id"],
        seller_name=document.get("seller_name"),
        status=document["status"],
        version=document["version"],
        currency=document["currency"],
        placed_at=document["placed_at"],
        buyer=document["buyer"],
        lines=tuple(_line(item) for item in document["items"]),
        shipping_address=document["shipping_address"],
        billing_address=document["billing_address"],
        payment_method=document["payment_method"],
    )


NUMBER_KEY = "number_key"
"""The seller and the number, on numbered invoices only: what the unique index holds."""


def invoice_to_document(invoice: Invoice) -> Document:
    """Every field but the outbox (pushed separately, so a write never drops pending events)."""
    document = _invoice_fields(invoice)
    if invoice.sequence is not None:
        document[NUMBER_KEY] = number_key(invoice.seller_id, invoice.sequence)
    return document


def number_key(seller_id: str, sequence: int) -> str:
    return compound_id(seller_id, str(sequence))


def _invoice_fields(invoice: Invoice) -> Document:
    failure = invoice.failure
    return {
        "_id": invoice.invoice_id,
        "order_id": invoice.order_id,
        "order_version": invoice.order_version,
        "seller_id": invoice.seller_id,
        "seller_name": invoice.seller_name,
        "currency": invoice.currency,
        "buyer": dict(invoice.buyer),
        "billing_address": dict(invoice.billing_address),
        "shipping_address": dict(invoice.shipping_address),
        "payment_method": dict(invoice.payment_method),
        "items": [_line_document(line) for line in invoice.lines],
        "shipping": {
            "carrier": invoice.shipping.carrier,
            "tracking_number": invoice.shipping.tracking_number,
            # BSON has no date type: an ISO date string keeps it exact.
            "shipped_at": invoice.shipping.shipped_at.isoformat(),
            "shipping_cost": invoice.shipping.shipping_cost,
        },
        "status": invoice.status.value,
        "sequence": invoice.sequence,
        "number": invoice.number,
        "created_at": invoice.created_at,
        "issued_at": invoice.issued_at,
        "paid_at": invoice.paid_at,
        "processor_ref": invoice.processor_ref,
        "failure": (
            {"reason": failure.reason, "retryable": failure.retryable, "attempt": failure.attempt}
            if failure
            else None
        ),
        "voided_at": invoice.voided_at,
        "refunded_at": invoice.refunded_at,
        "refund_ref": invoice.refund_ref,
        "version": invoice.version,
        PROCESSED_FIELD: list(invoice.processed_events),
        "request_marks": list(invoice.request_marks),
    }


def invoice_from_document(document: Document) -> Invoice:
    shipping = document["shipping"]
    failure = document.get("failure")
    return Invoice(
        invoice_id=document["_id"],
        order_id=document["order_id"],
        order_version=document["order_version"],
        seller_id=document["seller_id"],
        seller_name=document.get("seller_name"),
        currency=document["currency"],
        buyer=document["buyer"],
        billing_address=document["billing_address"],
        shipping_address=document["shipping_address"],
        payment_method=document["payment_method"],
        lines=[_line(item) for item in document["items"]],
        shipping=Shipping(
            carrier=shipping["carrier"],
            tracking_number=shipping["tracking_number"],
            shipped_at=date.fromisoformat(shipping["shipped_at"]),
            shipping_cost=shipping["shipping_cost"],
        ),
        created_at=document["created_at"],
        status=InvoiceStatus(document["status"]),
        sequence=document.get("sequence"),
        issued_at=document.get("issued_at"),
        paid_at=document.get("paid_at"),
        processor_ref=document.get("processor_ref"),
        failure=PaymentFailure(**failure) if failure else None,
        voided_at=document.get("voided_at"),
        refunded_at=document.get("refunded_at"),
        refund_ref=document.get("refund_ref"),
        version=document["version"],
        processed_events=list(document.get(PROCESSED_FIELD) or []),
        request_marks=list(document.get("request_marks") or []),
    )

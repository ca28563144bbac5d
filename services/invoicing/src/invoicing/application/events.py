"""Translation between the contracts and the domain: order snapshots in, invoice events out."""

from __future__ import annotations

from typing import Any

from juniper_shared.contracts.common import Buyer, OrderSnapshot
from juniper_shared.contracts.events import (
    Envelope,
    InvoiceIssued,
    InvoiceIssuedData,
    InvoicePaid,
    InvoicePaidData,
    InvoicePaymentFailed,
    InvoicePaymentFailedData,
    InvoiceVoided,
    InvoiceVoidedData,
)
from juniper_shared.contracts.money import from_minor, to_minor
from juniper_shared.logs import correlation_id

from invoicing.domain.invoice import Invoice
from invoicing.domain.order import InvoiceableOrder, OrderLine

PRODUCER = "invoicing"


def order_from_snapshot(snapshot: OrderSnapshot) -> InvoiceableOrder:
    currency = snapshot.currency
    return InvoiceableOrder(
        order_id=snapshot.order_id,
        seller_id=snapshot.seller_id,
        seller_name=snapshot.seller_name,
        status=snapshot.status,
        version=snapshot.version,
        currency=currency,
        placed_at=snapshot.placed_at,
        buyer=snapshot.buyer.model_dump(mode="json"),
        lines=tuple(
            OrderLine(
                sku=item.sku,
                name=item.name,
                unit_price=to_minor(item.unit_price, currency),
                quantity=item.quantity,
            )
            for item in snapshot.items
        ),
        shipping_address=snapshot.shipping_address.model_dump(mode="json"),
        billing_address=snapshot.billing_address.model_dump(mode="json"),
        payment_method=snapshot.payment_method.model_dump(mode="json"),
    )


def document_url(base_url: str, invoice_id: str) -> str:
    return f"{base_url.rstrip('/')}/v1/invoices/{invoice_id}/document"


def _lines(invoice: Invoice) -> list[dict[str, Any]]:
    return [
        {
            "sku": line.sku,
            "name": line.name,
            "unit_price": from_minor(line.unit_price, invoice.currency),
            "quantity": line.quantity,
            "line_total": from_minor(line.line_total, invoice.currency),
        }
        for line in invoice.lines
    ]


def _envelope(kind: type[Envelope], invoice: Invoice, data: Any, cause: Envelope | None) -> Any:
    return kind(  # type: ignore[call-arg]  # `type` defaults per event class
        producer=PRODUCER,
        seller_id=invoice.seller_id,
        correlation_id=(cause.correlation_id if cause else "") or correlation_id.get(),
        causation_id=str(cause.event_id) if cause else None,
        data=data,
    )


def issued_event(invoice: Invoice, *, url: str) -> InvoiceIssued:
    assert invoice.number is not None
    assert invoice.issued_at is not None
    money = invoice.currency
    data = InvoiceIssuedData.model_validate(
        {
            "invoice_id": invoice.invoice_id,
            "number": invoice.number,
            "order_id": invoice.order_id,
            "seller_id": invoice.seller_id,
            "seller_name": invoice.seller_name,
            "buyer": Buyer.model_validate(invoice.buyer),
            "lines": _lines(invoice),
            "subtotal": from_minor(invoice.subtotal, money),
            "shipping_cost": from_minor(invoice.shipping_cost, money),
            "amount": from_minor(invoice.total, money),
            "currency": money,
            "payment_method": dict(invoice.payment_method),
            "issued_at": invoice.issued_at,
            "due_date": invoice.due_date,
            "url": url,
        }
    )
    issued: InvoiceIssued = _envelope(InvoiceIssued, invoice, data, None)
    return issued


def _outcome_fields(invoice: Invoice, url: str) -> dict[str, Any]:
    return {
        "invoice_id": invoice.invoice_id,
        "number": invoice.number,
        "order_id": invoice.order_id,
        "buyer": Buyer.model_validate(invoice.buyer),
        "seller_name": invoice.seller_name,
        "url": url,
        "amount": from_minor(invoice.total, invoice.currency),
        "currency": invoice.currency,
    }


def paid_event(invoice: Invoice, *, url: str, cause: Envelope) -> InvoicePaid:
    data = InvoicePaidData.model_validate(
        {
            **_outcome_fields(invoice, url),
            "paid_at": invoice.paid_at,
            "processor_ref": invoice.processor_ref,
        }
    )
    paid: InvoicePaid = _envelope(InvoicePaid, invoice, data, cause)
    return paid


def payment_failed_event(invoice: Invoice, *, url: str, cause: Envelope) -> InvoicePaymentFailed:
    assert invoice.failure is not None
    data = InvoicePaymentFailedData.model_validate(
        {
            **_outcome_fields(invoice, url),
            "reason": invoice.failure.reason,
            "retryable": invoice.failure.retryable,
            "attempt": invoice.failure.attempt,
        }
    )
    failed: InvoicePaymentFailed = _envelope(InvoicePaymentFailed, invoice, data, cause)
    return failed


def voided_event(invoice: Invoice, *, url: str, cause: Envelope) -> InvoiceVoided:
    assert invoice.voided_at is not None
    data = InvoiceVoidedData.model_validate(
        {
            **_outcome_fields(invoice, url),
            "reason": "order_cancelled",
            "voided_at": invoice.voided_at,
        }
    )
    voided: InvoiceVoided = _envelope(InvoiceVoided, invoice, data, cause)
    return voided

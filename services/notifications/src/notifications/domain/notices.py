"""What to tell the buyer about an event: recipient, subject and the facts the email shows."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from juniper_shared.contracts.common import Buyer, InvoiceLine, OrderLine, OrderSnapshot
from juniper_shared.contracts.events import (
    Envelope,
    InvoiceIssued,
    InvoicePaid,
    InvoicePaymentFailed,
    InvoiceVoided,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderRejected,
    OrderSplit,
)

REJECT_REASONS: dict[str, str] = {
    "out_of_stock": "some items are out of stock",
    "outside_territory": "your address is outside the area this seller serves",
    "buyer_not_approved": "this seller only sells to approved buyers",
    "other": "the seller could not fulfil it",
}

PAYMENT_FAILURES: dict[str, str] = {
    "card_declined": "your card was declined",
    "insufficient_funds": "the card has insufficient funds",
    "expired_card": "the card has expired",
}

EMAILED_TYPES = frozenset(
    {
        "order.accepted",
        "order.rejected",
        "order.split",
        "order.cancelled",
        "order.expired",
        "invoice.issued",
        "invoice.paid",
        "invoice.payment_failed",
        "invoice.voided",
    }
)
"""Event types that send the buyer an email; `order.received` and `order.updated` send none."""

_HEADER_BREAKERS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
MAX_HEADER_TEXT = 200


def header_safe(text: str, *, limit: int = MAX_HEADER_TEXT) -> str:
    """Text fit for one header line: CR, LF and other control characters become one space."""
    cleaned = " ".join(_HEADER_BREAKERS.sub(" ", text).split())
    return cleaned[:limit].rstrip()


def reject_reason_in_words(reason: str) -> str:
    return REJECT_REASONS.get(reason, REJECT_REASONS["other"])


def payment_failure_in_words(reason: str) -> str:
    return PAYMENT_FAILURES.get(reason, "the payment could not be completed")


def web_link(url: str) -> str:
    """A link the email may show: http(s) only, anything else is left out."""
    return url if url.startswith(("https://", "http://")) and header_safe(url) == url else ""


def invoice_document_path(invoice_id: str) -> str:
    """The path of the invoice's printable document on invoicing: what a buyer link signs."""
    return f"/v1/invoices/{invoice_id}/document"


def money(amount: Decimal, currency: str) -> str:
    return f"{amount} {currency}"


@dataclass(frozen=True)
class Notice:
    """One email to one buyer, caused by one event (the event id makes it unique)."""

    event_id: str
    event_type: str
    occurred_at: datetime
    seller_id: str
    order_id: str
    template: str
    to_name: str
    to_email: str
    subject: str
    context: dict[str, Any] = field(default_factory=dict)
    invoice_id: str | None = None
    related_order_id: str | None = None
    """A second order the email is about (the new order of a split)."""
    link_path: str | None = None
    """The resource `context["url"]` names; the link is signed for it when the email is
    composed, so that the buyer opens it without a login."""


def notice_for(event: Envelope) -> Notice | None:
    """The email `event` sends the buyer, or None for events the buyer is not told about."""
    match event:
        case OrderRejected():
            return _rejected(event)
        case OrderAccepted():
            return _accepted(event)
        case OrderSplit():
            return _split(event)
        case OrderCancelled():
            return _cancelled(event)
        case OrderExpired():
            return _expired(event)
        case InvoiceIssued():
            return _invoice_issued(event)
        case InvoicePaymentFailed():
            return _payment_failed(event)
        case InvoicePaid():
            return _invoice_paid(event)
        case InvoiceVoided():
            return _invoice_voided(event)
    return None


def _rejected(event: OrderRejected) -> Notice:
    order = event.data.order
    return _order_notice(
        event,
        order,
        template="order_rejected",
        subject=f"Your order {order.order_id} from {_seller(order)} was declined",
        reason=reject_reason_in_words(event.data.reason),
        message=event.data.message.strip(),
    )


def _accepted(event: OrderAccepted) -> Notice:
    order = event.data.order
    return _order_notice(
        event,
        order,
        template="order_accepted",
        subject=f"Your order {order.order_id} from {_seller(order)} was accepted",
    )


def _split(event: OrderSplit) -> Notice:
    parent, new_order = event.data.parent, event.data.new_order
    return _order_notice(
        event,
        parent,
        template="order_split",
        subject=(
            f"Your order {parent.order_id} from {_seller(parent)} was split; "
            f"some items are now order {new_order.order_id}"
        ),
        related_order_id=new_order.order_id,
        new_order=_order_view(new_order),
    )


def _cancelled(event: OrderCancelled) -> Notice:
    order = event.data.order
    return _order_notice(
        event,
        order,
        template="order_cancelled",
        subject=f"Your order {order.order_id} from {_seller(order)} was cancelled",
        message=event.data.message.strip(),
    )


def _expired(event: OrderExpired) -> Notice:
    order = event.data.order
    return _order_notice(
        event,
        order,
        template="order_expired",
        subject=f"Your order {order.order_id} from {_seller(order)} was not accepted in time",
        expired_on=_day(event.data.expires_at.date()),
    )


def _invoice_issued(event: InvoiceIssued) -> Notice:
    data = event.data
    seller = _name(data.seller_name, event.seller_id)
    return _invoice_notice(
        event,
        data.buyer,
        template="invoice_issued",
        subject=f"Invoice {data.number} from {seller}",
        invoice_id=data.invoice_id,
        order_id=data.order_id,
        seller_name=seller,
        number=data.number,
        total=money(data.amount, data.currency),
        subtotal=money(data.subtotal, data.currency),
        shipping_cost=money(data.shipping_cost, data.currency),
        due_date=_day(data.due_date),
        url=web_link(data.url),
        lines=[_line_view(line, data.currency) for line in data.lines],
        pays_by_card=data.payment_method.type == "credit_card",
    )


def _payment_failed(event: InvoicePaymentFailed) -> Notice:
    data = event.data
    seller = _name(data.seller_name, event.seller_id)
    return _invoice_notice(
        event,
        data.buyer,
        template="invoice_payment_failed",
        subject=f"Payment for invoice {data.number} from {seller} did not go through",
        invoice_id=data.invoice_id,
        order_id=data.order_id,
        seller_name=seller,
        number=data.number,
        total=money(data.amount, data.currency),
        url=web_link(data.url),
        reason=payment_failure_in_words(data.reason),
        retryable=data.retryable,
    )


def _invoice_paid(event: InvoicePaid) -> Notice:
    data = event.data
    seller = _name(data.seller_name, event.seller_id)
    return _invoice_notice(
        event,
        data.buyer,
        template="invoice_paid",
        subject=f"Receipt: invoice {data.number} from {seller} is paid",
        invoice_id=data.invoice_id,
        order_id=data.order_id,
        seller_name=seller,
        number=data.number,
        total=money(data.amount, data.currency),
        url=web_link(data.url),
        paid_on=_day(data.paid_at.date()),
        processor_ref=data.processor_ref or "",
    )


def _invoice_voided(event: InvoiceVoided) -> Notice:
    data = event.data
    seller = _name(data.seller_name, event.seller_id)
    return _invoice_notice(
        event,
        data.buyer,
        template="invoice_voided",
        subject=f"Invoice {data.number} from {seller} was cancelled",
        invoice_id=data.invoice_id,
        order_id=data.order_id,
        seller_name=seller,
        number=data.number,
        total=money(data.amount, data.currency),
        voided_on=_day(data.voided_at.date()),
    )


def _order_notice(
    event: Envelope,
    order: OrderSnapshot,
    *,
    template: str,
    subject: str,
    related_order_id: str | None = None,
    **extra: Any,
) -> Notice:
    return Notice(
        event_id=str(event.event_id),
        event_type=event.type,
        occurred_at=event.occurred_at,
        seller_id=event.seller_id,
        order_id=order.order_id,
        template=template,
        to_name=header_safe(order.buyer.name),
        to_email=order.buyer.email,
        subject=header_safe(subject, limit=250),
        related_order_id=related_order_id,
        context={
            "buyer_name": header_safe(order.buyer.name),
            "seller_name": _seller(order),
            "order": _order_view(order),
            **extra,
        },
    )


def _invoice_notice(
    event: Envelope,
    buyer: Buyer,
    *,
    template: str,
    subject: str,
    invoice_id: str,
    order_id: str,
    **context: Any,
) -> Notice:
    link_path = invoice_document_path(invoice_id)
    if "url" in context and not context["url"].endswith(link_path):
        context["url"] = ""  # a link to anything but this invoice's document is not sent
    return Notice(
        event_id=str(event.event_id),
        event_type=event.type,
        occurred_at=event.occurred_at,
        seller_id=event.seller_id,
        order_id=order_id,
        invoice_id=invoice_id,
        template=template,
        to_name=header_safe(buyer.name),
        to_email=buyer.email,
        subject=header_safe(subject, limit=250),
        link_path=link_path if context.get("url") else None,
        context={"buyer_name": header_safe(buyer.name), "order_id": order_id, **context},
    )


def _order_view(order: OrderSnapshot) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "placed_on": _day(order.placed_at.date()),
        "items": [_line_view(line, order.currency) for line in order.items],
        "subtotal": money(order.subtotal, order.currency),
        "shipping_fee": money(order.shipping_fee, order.currency),
        "total": money(order.total, order.currency),
    }


def _line_view(line: OrderLine | InvoiceLine, currency: str) -> dict[str, Any]:
    return {
        "name": line.name,
        "sku": line.sku,
        "quantity": line.quantity,
        "unit_price": money(line.unit_price, currency),
        "line_total": money(line.line_total, currency),
    }


def _seller(order: OrderSnapshot) -> str:
    return _name(order.seller_name, order.seller_id)


def _name(name: str | None, fallback: str) -> str:
    cleaned = header_safe(name or "")
    return cleaned or fallback


def _day(day: date | None) -> str:
    return f"{day:%B} {day.day}, {day.year}" if day is not None else ""

"""The invoice as a printable document: HTML (Jinja2, autoescaped) and PDF (fpdf2)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fpdf import FPDF
from jinja2 import Environment, PackageLoader, select_autoescape
from juniper_shared.contracts.money import from_minor

from invoicing.domain.invoice import Invoice

_templates = Environment(
    loader=PackageLoader("invoicing", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


@dataclass(frozen=True)
class PrintedLine:
    sku: str
    name: str
    unit_price: str
    quantity: int
    line_total: str


@dataclass(frozen=True)
class Printable:
    """Everything printed on an invoice, already formatted as text."""

    number: str | None
    status: str
    payment_status: str
    order_id: str
    seller_name: str
    buyer_name: str
    buyer_company: str
    buyer_email: str
    billing_address: list[str]
    shipping_address: list[str]
    carrier: str
    tracking_number: str
    shipped_at: str
    issued_on: str | None
    due_date: str
    lines: list[PrintedLine]
    currency: str
    subtotal: str
    shipping_cost: str
    total: str
    payment_method: str


def _address(address: Mapping[str, Any]) -> list[str]:
    city = " ".join(
        part
        for part in (address.get("city"), address.get("region"), address.get("postal_code"))
        if part
    )
    lines = [address.get("name"), address.get("line1"), address.get("line2"), city]
    return [str(line) for line in (*lines, address.get("country")) if line]


def _payment_method(method: Mapping[str, Any]) -> str:
    kind = method.get("type")
    if kind == "credit_card":
        return f"{str(method.get('brand', 'card')).title()} card ending {method.get('last4')}"
    if kind == "net_terms":
        return f"Net {method.get('days')} days"
    return "Other (arranged with the seller)"


def printable(invoice: Invoice) -> Printable:
    def money(units: int) -> str:
        return str(from_minor(units, invoice.currency))

    return Printable(
        number=invoice.number,
        status=invoice.status.value,
        payment_status=invoice.payment_status.value,
        order_id=invoice.order_id,
        seller_name=invoice.seller_name or invoice.seller_id,
        buyer_name=str(invoice.buyer.get("name", "")),
        buyer_company=str(invoice.buyer.get("company") or ""),
        buyer_email=str(invoice.buyer.get("email", "")),
        billing_address=_address(invoice.billing_address),
        shipping_address=_address(invoice.shipping_address),
        carrier=invoice.shipping.carrier,
        tracking_number=invoice.shipping.tracking_number,
        shipped_at=invoice.shipping.shipped_at.isoformat(),
        issued_on=invoice.issued_at.date().isoformat() if invoice.issued_at else None,
        due_date=invoice.due_date.isoformat(),
        lines=[
            PrintedLine(
                sku=line.sku,
                name=line.name,
                unit_price=money(line.unit_price),
                quantity=line.quantity,
                line_total=money(line.line_total),
            )
            for line in invoice.lines
        ],
        currency=invoice.currency,
        subtotal=money(invoice.subtotal),
        shipping_cost=money(invoice.shipping_cost),
        total=money(invoice.total),
        payment_method=_payment_method(invoice.payment_method),
    )


def render_html(invoice: Invoice) -> str:
    return _templates.get_template("invoice.html").render(doc=printable(invoice))


def _latin1(text: str) -> str:
    # The PDF core fonts cover Latin-1 only; anything else prints as "?" rather than failing.
    return text.encode("latin-1", "replace").decode("latin-1")


def render_pdf(invoice: Invoice) -> bytes:
    doc = printable(invoice)
    pdf = FPDF(format="A4")
    pdf.set_title(_latin1(f"Invoice {doc.number or 'draft'}"))
    pdf.set_author(_latin1(doc.seller_name))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)

    def line(text: str, *, height: float = 6) -> None:
        pdf.cell(0, height, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    line(f"Invoice {doc.number or '(draft)'}", height=10)
    pdf.set_font("Helvetica", "", 10)
    line(f"From: {doc.seller_name}")
    line(f"Order: {doc.order_id}")
    line(f"Issued: {doc.issued_on or 'not yet issued'}    Due: {doc.due_date}")
    line(f"Status: {doc.status}    Payment: {doc.payment_status}")
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 11)
    line("Bill to")
    pdf.set_font("Helvetica", "", 10)
    buyer = [doc.buyer_name, doc.buyer_company, doc.buyer_email, *doc.billing_address]
    for text in buyer:
        if text:
            line(text, height=5)
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 11)
    line("Ship to")
    pdf.set_font("Helvetica", "", 10)
    for text in doc.shipping_address:
        line(text, height=5)
    line(f"Shipped {doc.shipped_at} by {doc.carrier}, tracking {doc.tracking_number}", height=5)
    pdf.ln(3)
    widths = (30, 75, 30, 20, 35)
    pdf.set_font("Helvetica", "B", 10)
    for width, title in zip(widths, ("SKU", "Item", "Unit price", "Qty", "Amount"), strict=True):
        pdf.cell(width, 7, title, border="B")
    pdf.ln(7)
    pdf.set_font("Helvetica", "", 10)
    for item in doc.lines:
        cells = (item.sku, item.name, item.unit_price, str(item.quantity), item.line_total)
        for index, (width, text) in enumerate(zip(widths, cells, strict=True)):
            pdf.cell(width, 6, _latin1(text)[:48], align="R" if index >= 2 else "L")
        pdf.ln(6)
    pdf.ln(3)
    for label, amount in (
        ("Subtotal", doc.subtotal),
        ("Shipping", doc.shipping_cost),
        ("Total", doc.total),
    ):
        pdf.set_font("Helvetica", "B" if label == "Total" else "", 10)
        pdf.cell(sum(widths[:4]), 6, label, align="R")
        pdf.cell(widths[4], 6, f"{doc.currency} {amount}", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "", 10)
    line(f"Payment method: {doc.payment_method}")
    return bytes(pdf.output())

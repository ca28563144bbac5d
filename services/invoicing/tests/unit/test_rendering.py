"""The printable invoice: what the buyer reads, escaped in HTML and real text in the PDF."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

from invoicing.adapters.rendering import render_html, render_pdf
from invoicing.domain.invoice import Invoice, Shipping, draft_invoice
from invoicing.domain.order import InvoiceableOrder, OrderLine
from pypdf import PdfReader

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ADDRESS = {
    "name": "Zoë's <Shop>",
    "line1": "1 Rue Été",
    "city": "Lyon",
    "postal_code": "69001",
    "country": "FR",
}


def issued_invoice() -> Invoice:
    order = InvoiceableOrder(
        order_id="ord-9",
        seller_id="seller-1",
        seller_name="Juniper <Pottery>",
        status="approved",
        version=2,
        currency="EUR",
        placed_at=NOW,
        buyer={"id": "b", "name": "Zoë Buyer", "email": "zoe@example.com", "company": "Café — Ltd"},
        lines=(OrderLine("MUG", "Mug ☕", 1250, 3),),
        shipping_address=ADDRESS,
        billing_address=ADDRESS,
        payment_method={"type": "net_terms", "days": 30},
    )
    invoice = draft_invoice(order, Shipping("DHL", "JD01", date(2026, 11, 27), 990), now=NOW)
    invoice.issue(42, now=NOW)
    return invoice


def test_html_escapes_what_buyers_and_sellers_typed() -> None:
    html = render_html(issued_invoice())
    assert "Invoice INV-000042" in html
    assert "Juniper &lt;Pottery&gt;" in html
    assert "<Pottery>" not in html
    assert "EUR 47.40" in html
    assert "Net 30 days" in html


def test_the_pdf_is_a_real_document_even_with_characters_outside_latin_1() -> None:
    pdf = render_pdf(issued_invoice())
    assert pdf.startswith(b"%PDF-")
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    for expected in (
        "Invoice INV-000042",
        "Zoë Buyer",
        "EUR 37.50",
        "EUR 9.90",
        "EUR 47.40",
        "Due: 2026-12-27",
        "Mug ?",
    ):
        assert expected in text, expected

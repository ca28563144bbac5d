"""Invoicing's own Prometheus metrics (beside the shared ones on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter

INVOICES_ISSUED = Counter("jm_invoices_issued_total", "Invoices given a number")
INVOICE_PAYMENTS = Counter(
    "jm_invoice_payment_outcomes_total", "Payment outcomes applied to invoices", ["outcome"]
)
NUMBERING_CONTENTION = Counter(
    "jm_invoice_numbering_contention_total",
    "Numbers found taken by another replica's confirm of the same seller (retried after a pause)",
)
INVOICES_VOIDED = Counter(
    "jm_invoices_voided_total",
    "Invoices voided because their order was cancelled, by what they were (draft or issued)",
    ["was"],
)

"""The payments service's own Prometheus metrics (the shared ones come with juniper_shared)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PAYMENT_OUTCOMES = Counter(
    "jm_payment_outcomes_total",
    "Payment attempts that ended, by status and failure reason",
    ["status", "reason"],
)
PROCESSOR_RETRIES = Counter(
    "jm_card_processor_retries_total",
    "Card processor calls retried after a transient fault",
    ["cause"],
)
CHARGES_IN_FLIGHT = Gauge("jm_charges_in_flight", "Charges running or queued in this process")
PAYMENTS_VOIDED = Counter(
    "jm_payments_voided_total", "Payments whose invoice was voided (order cancelled)"
)
REFUND_OUTCOMES = Counter(
    "jm_refund_outcomes_total",
    "Refunds of voided invoices' charges that ended, by status",
    ["status"],
)

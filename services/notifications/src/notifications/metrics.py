"""The service's own Prometheus metrics (the shared ones come from juniper_shared.metrics)."""

from __future__ import annotations

from prometheus_client import Counter

EMAILS = Counter(
    "jm_emails_total",
    "Emails by template and outcome: sent, failed (refused for good), deferred (server unreachable)",
    ["template", "outcome"],
)
SMTP_RETRIES = Counter("jm_smtp_retries_total", "SMTP sends tried again after a transient fault")

"""The orders service's own Prometheus metrics (the shared ones come from juniper_shared.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EXPIRY_LAG = Gauge(
    "jm_expiry_lag_seconds",
    "Age of the oldest pending order past its deadline and not yet expired (0: none), "
    "measured by every replica at each sweep tick",
)
EXPIRY_OUTCOMES = Counter(
    "jm_expiry_outcomes_total",
    "Due orders the sweeper met: expired, lost (changed meanwhile), rescheduled, failed",
    ["outcome"],
)
EXPIRY_SWEEPER = Gauge(
    "jm_expiry_sweeper", "1 while this replica holds the expiry lease and sweeps, else 0"
)

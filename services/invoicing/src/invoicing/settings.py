"""The invoicing service's configuration (environment variables)."""

from __future__ import annotations

from juniper_shared.settings import BuyerLinkSettings
from pydantic import Field


class InvoicingSettings(BuyerLinkSettings):
    http_port: int = 8002
    invoicing_orders_events_lag_seconds: float = Field(default=0.0, ge=0, le=60)
    """TEST-ONLY (`INVOICING_ORDERS_EVENTS_LAG_SECONDS`): hold every `orders.events` batch this
    long before applying it, as a lagging consumer would, so the end-to-end suite can reproduce
    a confirm racing a cancel. Never set it in a real deployment."""

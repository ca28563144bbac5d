"""The orders service's configuration (environment variables)."""

from __future__ import annotations

from juniper_shared.settings import ServiceSettings
from pydantic import Field


class OrdersSettings(ServiceSettings):
    http_port: int = 8001
    expiry_sweep_seconds: float = Field(default=60.0, gt=0, le=3600)
    """How often the replica holding the expiry lease looks for due orders: it bounds how late
    an expiry can be."""
    expiry_lease_seconds: float = Field(default=0.0, ge=0, le=86_400)
    """How long the sweeper's lease lasts unrenewed, after which another replica takes over
    (0: three sweep intervals, at least 30 s)."""
    expiry_page_size: int = Field(default=200, ge=1, le=1000)
    """Due orders read per page of the sweep."""

    def lease_seconds(self) -> float:
        return self.expiry_lease_seconds or max(3 * self.expiry_sweep_seconds, 30.0)

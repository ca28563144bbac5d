"""When a pending order the seller never answered expires."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_EXPIRY_DAYS = 14
MIN_EXPIRY_DAYS = 1
MAX_EXPIRY_DAYS = 90


@dataclass(frozen=True)
class SellerSettings:
    """A seller's choices; a seller who never chose is gated and has the default window."""

    buyer_access_requires_approval: bool = True
    pending_order_expiry_days: int = DEFAULT_EXPIRY_DAYS


def deadline(placed_at: datetime, days: int) -> datetime:
    """The moment an order placed at `placed_at` expires if it is still pending."""
    return placed_at + timedelta(days=days)

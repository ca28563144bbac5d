"""Customers: a seller's relationship with one or more buyers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Customer:
    customer_id: str
    seller_id: str
    name: str
    email: str
    buyer_ids: list[str] = field(default_factory=list)
    version: int = 1

    def link(self, buyer_id: str) -> bool:
        """Link a buyer; returns False when it was already linked."""
        if buyer_id in self.buyer_ids:
            return False
        self.buyer_ids = [*self.buyer_ids, buyer_id]
        return True


def buyer_admitted(*, requires_approval: bool, buyer_linked: bool) -> bool:
    """A gated seller only takes orders from buyers it already has a relationship with."""
    return buyer_linked or not requires_approval

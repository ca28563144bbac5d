"""Domain errors; entrypoints turn them into HTTP codes."""

from __future__ import annotations

from juniper_shared.errors import DomainError, InvalidState, NotFound

__all__ = ["DomainError", "InvalidState", "NotFound"]


class NotInvoiceable(DomainError):
    """The order is not approved, or already has an issued invoice."""

    code = "order_not_invoiceable"


class InvalidShipping(DomainError):
    code = "validation_error"


class OrderNotCurrent(DomainError):
    """Invoicing has not yet heard of the order version the seller is looking at."""

    code = "order_not_current"

"""Domain errors; entrypoints turn them into HTTP codes."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of invoicing was broken; `code` is machine-readable."""

    code = "domain_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    code = "not_found"


class NotInvoiceable(DomainError):
    """The order is not approved, or already has an issued invoice."""

    code = "order_not_invoiceable"


class InvalidState(DomainError):
    code = "invalid_state"


class InvalidShipping(DomainError):
    code = "validation_error"

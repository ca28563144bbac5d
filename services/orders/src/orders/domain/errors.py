"""Domain errors; entrypoints turn them into HTTP codes."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the order life cycle was broken; `code` is machine-readable."""

    code = "domain_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidState(DomainError):
    code = "invalid_state"


class InvalidEdit(DomainError):
    """The edit names lines that do not exist, or would leave an order empty."""

    code = "validation_error"


class CustomerRequired(DomainError):
    code = "customer_required"

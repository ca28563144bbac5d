"""Domain errors; entrypoints turn them into HTTP codes."""

from __future__ import annotations

from juniper_shared.errors import DomainError, InvalidState, NotFound

__all__ = ["DomainError", "InvalidState", "NotFound"]


class InvalidEdit(DomainError):
    """The edit names lines that do not exist, or would leave an order empty."""

    code = "validation_error"


class CustomerRequired(DomainError):
    code = "customer_required"

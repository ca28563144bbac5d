"""Domain errors; entrypoints turn them into HTTP codes."""

from __future__ import annotations


class DomainError(Exception):
    """A payment rule was broken; `code` is machine-readable."""

    code = "domain_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidState(DomainError):
    code = "invalid_state"


class NotFound(DomainError):
    code = "not_found"

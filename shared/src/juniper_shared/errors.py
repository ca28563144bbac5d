"""Errors with a machine-readable code, turned into the contract's error body at the edge."""

from __future__ import annotations


class DomainError(Exception):
    """A business rule was broken. Services subclass it with their `code`s; the HTTP layer
    (juniper_shared.http) maps each code to a status, so domain code never speaks HTTP."""

    code = "domain_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    code = "not_found"


class InvalidState(DomainError):
    """The action is not allowed in the resource's current status."""

    code = "invalid_state"


class RetryLater(Exception):
    """A dependency is unreachable or busy (a lost race that kept repeating, a mail server
    down): the same work may succeed when tried again, so a consumer redelivers its batch and
    an HTTP request is answered 503 with `code` and `Retry-After`."""

    code = "retry_later"


class ApiError(Exception):
    """An error the HTTP layer reports as `{"error": {"code", "message"}}` with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

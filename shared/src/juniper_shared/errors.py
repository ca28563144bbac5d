"""Errors with a machine-readable code, turned into the contract's error body at the edge."""

from __future__ import annotations


class ApiError(Exception):
    """An error the HTTP layer reports as `{"error": {"code", "message"}}` with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def version_conflict(current: int) -> ApiError:
    return ApiError(
        412, "version_conflict", f"the resource changed; its current version is {current}"
    )

"""Domain errors; entrypoints turn them into HTTP codes."""

from __future__ import annotations

from juniper_shared.errors import DomainError, InvalidState, NotFound

__all__ = ["DomainError", "InvalidState", "NotFound"]

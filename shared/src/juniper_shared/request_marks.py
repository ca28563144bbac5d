"""Idempotency-Key marks: which keyed requests already changed a document (no I/O here).

The HTTP layer (juniper_shared.idempotency) hands a keyed request's mark to the handler it
serves; the handler that loads a document calls `check_marks` with it before acting and stores
`add_mark(...)` with its change, in the same single-document write. A request without a key
has no mark (None): nothing is checked or added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_MARKS = 16
"""Marks kept per document: plenty for retries, which follow their request within seconds."""


@dataclass(frozen=True)
class RequestMark:
    key: str
    """Digest of seller, method, path and Idempotency-Key: the stored response's `_id`."""
    fingerprint: str
    """Digest of the body: the same key with another body is refused."""

    @property
    def token(self) -> str:
        return f"{self.key}:{self.fingerprint}"


class AlreadyApplied(Exception):
    """The document holds the mark of the request being served: it acted before."""

    def __init__(self, *, same_body: bool) -> None:
        super().__init__("this request was applied before")
        self.same_body = same_body


def check_marks(marks: Sequence[str], mark: RequestMark | None) -> None:
    """Raise AlreadyApplied if the request with `mark` already changed this document."""
    if mark is None:
        return
    prefix = mark.key + ":"
    for token in marks:
        if token.startswith(prefix):
            raise AlreadyApplied(same_body=token == mark.token)


def add_mark(marks: Sequence[str], mark: RequestMark | None) -> list[str]:
    """The marks to store with a change made by the request with `mark`."""
    if mark is None:
        return list(marks)
    return [*marks, mark.token][-MAX_MARKS:]

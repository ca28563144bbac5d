"""Idempotency-Key marks: which keyed requests already changed a document (no I/O here).

The HTTP layer (juniper_shared.idempotency) serves a keyed request inside `serving(mark)`; the
handler that loads a document calls `check_marks` before acting and stores `add_mark(...)` with
its change, in the same single-document write.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
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


_current: ContextVar[RequestMark | None] = ContextVar("idempotent_request", default=None)


class AlreadyApplied(Exception):
    """The document holds the mark of the request being served: it acted before."""

    def __init__(self, *, same_body: bool) -> None:
        super().__init__("this request was applied before")
        self.same_body = same_body


def keyed_request() -> bool:
    """Whether the request being served carries an Idempotency-Key."""
    return _current.get() is not None


def check_marks(marks: Sequence[str]) -> None:
    """Raise AlreadyApplied if the request being served already changed this document."""
    mark = _current.get()
    if mark is None:
        return
    prefix = mark.key + ":"
    for token in marks:
        if token.startswith(prefix):
            raise AlreadyApplied(same_body=token == mark.token)


def add_mark(marks: Sequence[str]) -> list[str]:
    """The marks to store with a change made by the request being served."""
    mark = _current.get()
    if mark is None:
        return list(marks)
    return [*marks, mark.token][-MAX_MARKS:]


@contextmanager
def serving(mark: RequestMark) -> Iterator[None]:
    """The keyed request being served, for the handlers it calls."""
    token = _current.set(mark)
    try:
        yield
    finally:
        _current.reset(token)

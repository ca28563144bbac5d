"""Idempotency-Key marks on a document: a retry of a request that changed it is recognised."""

from __future__ import annotations

import pytest
from juniper_shared.request_marks import (
    MAX_MARKS,
    AlreadyApplied,
    RequestMark,
    add_mark,
    check_marks,
)

FIRST = RequestMark(key="k1", fingerprint="body-a")


def test_a_request_without_a_key_is_neither_checked_nor_marked() -> None:
    marks = add_mark([], FIRST)
    check_marks(marks, None)
    assert add_mark(marks, None) == marks


def test_a_retry_with_the_same_body_finds_its_mark() -> None:
    marks = add_mark([], FIRST)
    with pytest.raises(AlreadyApplied) as applied:
        check_marks(marks, RequestMark(key="k1", fingerprint="body-a"))
    assert applied.value.same_body


def test_the_same_key_with_another_body_is_told_apart() -> None:
    with pytest.raises(AlreadyApplied) as applied:
        check_marks(add_mark([], FIRST), RequestMark(key="k1", fingerprint="body-b"))
    assert not applied.value.same_body


def test_another_key_acts_and_only_the_last_marks_are_kept() -> None:
    marks: list[str] = []
    for n in range(MAX_MARKS + 1):
        check_marks(marks, RequestMark(key=f"k{n}", fingerprint="body"))
        marks = add_mark(marks, RequestMark(key=f"k{n}", fingerprint="body"))
    assert len(marks) == MAX_MARKS
    check_marks(marks, RequestMark(key="k0", fingerprint="body"))  # the oldest was dropped

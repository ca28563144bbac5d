"""The All Orders total, when the page itself tells it (no count round trip)."""

from __future__ import annotations

import pytest
from orders.adapters.mongo import total_from_page


@pytest.mark.parametrize(
    ("offset", "rows", "page_size", "total"),
    [
        (0, 0, 25, 0),  # an empty table
        (0, 3, 25, 3),  # a small seller: everything on the first page
        (50, 11, 25, 61),  # the last page, partly filled
    ],
)
def test_a_page_that_is_not_full_is_the_last_and_gives_the_total(
    offset: int, rows: int, page_size: int, total: int
) -> None:
    assert total_from_page(offset, rows, page_size) == total


@pytest.mark.parametrize(
    ("offset", "rows", "page_size"),
    [
        (0, 25, 25),  # a full first page: more may follow
        (25, 25, 25),
        (75, 0, 25),  # past the end: the total may be anything up to 75
    ],
)
def test_a_full_page_or_one_past_the_end_needs_a_count(
    offset: int, rows: int, page_size: int
) -> None:
    assert total_from_page(offset, rows, page_size) is None

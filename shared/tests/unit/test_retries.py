"""A change that lost a version race is tried again at once, a bounded number of times."""

from __future__ import annotations

import pytest
from juniper_shared.retries import retry_on_conflict


class Conflict(Exception):
    pass


async def test_a_change_that_loses_twice_is_stored_on_the_third_try() -> None:
    tries: list[int] = []

    async def attempt(number: int) -> str:
        tries.append(number)
        if number < 3:
            raise Conflict
        return "stored"

    assert await retry_on_conflict(attempt, conflict=Conflict, attempts=3) == "stored"
    assert tries == [1, 2, 3]


async def test_the_last_conflict_surfaces_and_other_errors_at_once() -> None:
    tries: list[int] = []

    async def always(number: int) -> None:
        tries.append(number)
        raise Conflict(number)

    with pytest.raises(Conflict, match=r"^4$"):
        await retry_on_conflict(always, conflict=Conflict, attempts=4)
    assert tries == [1, 2, 3, 4]

    async def refused(number: int) -> None:
        tries.append(number)
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await retry_on_conflict(refused, conflict=Conflict, attempts=4)
    assert tries[4:] == [1]

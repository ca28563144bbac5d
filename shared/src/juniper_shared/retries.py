"""Redoing a change whose guarded write lost a race: tenacity, configured once for the services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_none,
)

T = TypeVar("T")

Wait = Callable[[RetryCallState], float]


async def retry_on_conflict(
    attempt: Callable[[int], Awaitable[T]],
    *,
    conflict: type[Exception],
    attempts: int,
    wait: Wait | None = None,
) -> T:
    """`attempt(number)` (1 for the first) until it returns, at most `attempts` times, again at
    once (or after `wait`) whenever it raises `conflict`; the last try's conflict surfaces as it
    was raised, and any other exception at once."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        retry=retry_if_exception_type(conflict),
        wait=wait or wait_none(),
        reraise=True,
    )
    async for tried in retrying:
        with tried:
            return await attempt(tried.retry_state.attempt_number)
    raise AssertionError("unreachable: tenacity re-raises the last conflict")

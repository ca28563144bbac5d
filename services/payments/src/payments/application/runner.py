"""Runs charges in the background of the consumer and of the seller's request, bounded.

A charge is stored pending before it is submitted here, so a job that never runs (queue full,
shutdown, crash) is not lost: the pending scan submits it again with its stored key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from payments.application.ports import Job
from payments.metrics import CHARGES_IN_FLIGHT

log = logging.getLogger(__name__)


class ChargeRunner:
    """At most `concurrency` jobs at once, one per key, at most `max_queued` waiting.

    A job submitted while one for its key runs is run once more after it (e.g. a void arrives
    while the charge runs: the refund must not wait for the pending scan)."""

    def __init__(self, *, concurrency: int, max_queued: int = 1000) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._max_queued = max_queued
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: dict[str, Job] = {}
        self._stopping = False

    def submit(self, key: str, job: Job) -> bool:
        if self._stopping:
            return False
        if key in self._tasks:
            self._again[key] = job
            return True
        if len(self._tasks) >= self._max_queued:
            return False
        task = asyncio.create_task(self._run(job), name=f"charge {key}")
        self._tasks[key] = task
        CHARGES_IN_FLIGHT.set(len(self._tasks))
        task.add_done_callback(lambda _: self._done(key))
        return True

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def _run(self, job: Job) -> None:
        async with self._slots:
            try:
                await job()
            except Exception:
                # The attempt stays pending; the pending scan retries it with the same key.
                log.exception("charge failed before its outcome was stored")

    def _done(self, key: str) -> None:
        self._tasks.pop(key, None)
        CHARGES_IN_FLIGHT.set(len(self._tasks))
        again = self._again.pop(key, None)
        if again is not None:
            self.submit(key, again)

    async def stop(self, *, grace_seconds: float) -> None:
        """Let running charges finish for a while, then cancel the rest (they stay pending)."""
        self._stopping = True
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, still_running = await asyncio.wait(tasks, timeout=grace_seconds)
        for task in still_running:
            task.cancel()
        for task in still_running:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def every(seconds: float, action: Callable[[], Awaitable[object]]) -> None:
    """Run `action` every `seconds`, forever; failures are logged, not fatal."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await action()
        except Exception:
            log.exception("periodic %s failed; will try again", getattr(action, "__name__", ""))

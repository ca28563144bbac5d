"""Group commit: writes arriving during a flush leave together in the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from juniper_shared.batching import GroupCommit, InsertBehind, apply_per_key


class Recorder:
    def __init__(self) -> None:
        self.flushes: list[list[int]] = []
        self.release = asyncio.Event()

    async def flush(self, items: Sequence[int]) -> list[int | Exception]:
        self.flushes.append(list(items))
        await self.release.wait()
        return [ValueError(f"bad {item}") if item < 0 else item * 10 for item in items]


async def test_writes_that_arrive_during_a_flush_share_the_next_one() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.flush, max_items=3)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)  # the first write goes at once, alone
    later = [asyncio.create_task(group.submit(n)) for n in (2, 3, 4, 5)]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == 10
    assert [await task for task in later] == [20, 30, 40, 50]
    assert recorder.flushes == [[1], [2, 3, 4], [5]]


async def test_each_caller_gets_its_own_failure_and_a_failed_flush_fails_only_its_batch() -> None:
    recorder = Recorder()
    recorder.release.set()
    group = GroupCommit(recorder.flush)
    good, bad = await asyncio.gather(group.submit(7), group.submit(-1), return_exceptions=True)
    assert good == 70
    assert isinstance(bad, ValueError)

    calls = 0

    async def broken_once(items: Sequence[int]) -> list[int | Exception]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database down")
        return list(items)

    flaky = GroupCommit(broken_once)
    with pytest.raises(ConnectionError):
        await flaky.submit(1)
    assert await flaky.submit(2) == 2  # the next batch is not poisoned by the last one


async def test_a_batch_is_applied_in_order_per_key_and_across_keys_at_once() -> None:
    seen: list[str] = []
    running = peak = 0

    async def apply(item: str) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        seen.append(item)
        running -= 1

    items = ["a1", "b1", "a2", "c1", "b2", "a3"]
    await apply_per_key(items, lambda item: item[0], apply, parallel=2)

    assert sorted(seen) == sorted(items)
    for key in "abc":
        assert [i for i in seen if i[0] == key] == [i for i in items if i[0] == key]
    assert peak == 2  # two keys at once, never more


class FlakyCollection:
    """Refuses the first bulk insert, as a database that is down for a moment would."""

    def __init__(self) -> None:
        self.calls = 0
        self.stored: list[dict[str, Any]] = []

    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool) -> None:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("database unavailable")
        self.stored.extend(documents)


async def test_inserts_behind_stay_readable_until_a_failed_write_succeeds() -> None:
    collection = FlakyCollection()
    behind = InsertBehind(collection, delay_seconds=0.01)  # type: ignore[arg-type]
    behind.add({"_id": "a", "body": 1})
    behind.add({"_id": "b", "body": 2})
    for _ in range(200):
        if collection.stored:
            break
        assert behind.queued("a") == {"_id": "a", "body": 1}
        await asyncio.sleep(0.01)
    assert collection.calls == 2
    assert [document["_id"] for document in collection.stored] == ["a", "b"]
    assert behind.queued("a") is None and behind.queued("b") is None


async def test_inserts_behind_beyond_the_bound_drop_the_oldest() -> None:
    collection = FlakyCollection()
    behind = InsertBehind(collection, delay_seconds=60, max_queued=2)  # type: ignore[arg-type]
    for name in ("a", "b", "c"):
        behind.add({"_id": name})
    assert [behind.queued(name) for name in ("a", "b", "c")] == [None, {"_id": "b"}, {"_id": "c"}]
    collection.calls = 1  # the next write succeeds
    await behind.flush()
    assert [document["_id"] for document in collection.stored] == ["b", "c"]

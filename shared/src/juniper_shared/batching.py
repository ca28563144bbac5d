"""Sharing round trips: a consumed batch's writes in bulk commands (`bulk_write_in_chunks`,
`apply_per_key`), concurrent reads by `_id` as one `find` (GroupReads), concurrent guarded
updates as one `bulk_write` (GroupUpdates), concurrent inserts as one `insert` (GroupInserts),
and records nobody waits for as one insert (InsertBehind).

GroupReads, GroupUpdates and GroupInserts are group commit: no timer and no added latency; the first command
goes at once, those that arrive while it is in flight leave together in the next one. Each
caller still returns only once its own read or write is done.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar
from uuid import uuid4

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from juniper_shared.inbox import insert_new
from juniper_shared.mongo import Document

T = TypeVar("T")
R = TypeVar("R")


log = logging.getLogger(__name__)

MAX_STATEMENTS = 40
"""Statements per bulk command: FerretDB holds a PostgreSQL connection per statement."""
PARALLEL_KEYS = 16
"""Keys of one consumed batch worked on at once (each holds database connections)."""


async def bulk_write_in_chunks(
    collection: AsyncCollection[Document], operations: Sequence[Any]
) -> int:
    """Unordered bulk writes of at most MAX_STATEMENTS each; returns how many were modified."""
    modified = 0
    for start in range(0, len(operations), MAX_STATEMENTS):
        result = await collection.bulk_write(
            list(operations[start : start + MAX_STATEMENTS]), ordered=False
        )
        modified += result.modified_count
    return modified


async def apply_per_key(
    items: Iterable[T],
    key: Callable[[T], Hashable],
    apply: Callable[[T], Awaitable[None]],
    *,
    parallel: int = PARALLEL_KEYS,
) -> None:
    """Apply a batch: the items of one key one after another, in their order; different keys
    at once, `parallel` at a time, so their database work shares round trips."""
    by_key: dict[Hashable, list[T]] = {}
    for item in items:
        by_key.setdefault(key(item), []).append(item)

    async def in_order(group: list[T]) -> None:
        for item in group:
            await apply(item)

    groups = list(by_key.values())
    for start in range(0, len(groups), parallel):
        await asyncio.gather(*(in_order(group) for group in groups[start : start + parallel]))


class GroupCommit(Generic[T, R]):
    """Runs `flush` on the items queued so far; one flush in flight at a time."""

    def __init__(
        self,
        flush: Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]],
        *,
        max_items: int = MAX_STATEMENTS,
    ) -> None:
        self._flush = flush
        self._max_items = max_items
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_items], self._queue[self._max_items :]
            try:
                results = await self._flush([item for item, _ in batch])
            except Exception as error:  # every caller of this batch learns why
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)  # this item alone failed
                else:
                    future.set_result(result)


class GroupReads:
    """`find_one({"_id": x})` calls of one collection, grouped into one `find` with `$in`.

    Each caller gets its own copy of the document (callers change what they read). A read
    submitted after a write returned sees that write: its `find` starts after it was submitted.
    On FerretDB this needs deploy/local/ferretdb/1-index-lookups.patch (`$in` on `_id` from
    the index); MongoDB serves it from the `_id` index as it is.
    """

    def __init__(
        self, collection: AsyncCollection[Document], *, projection: Document | None = None
    ) -> None:
        self._collection = collection
        self._projection = projection
        self._group: GroupCommit[Any, Document | None] = GroupCommit(self._find)

    async def get(self, document_id: Any) -> Document | None:
        return await self._group.submit(document_id)

    async def _find(self, ids: Sequence[Any]) -> list[Document | Exception | None]:
        if len(ids) == 1:
            return [await self._collection.find_one({"_id": ids[0]}, self._projection)]
        wanted = list(dict.fromkeys(ids))
        found = {
            document["_id"]: document
            async for document in self._collection.find({"_id": {"$in": wanted}}, self._projection)
        }
        results: list[Document | Exception | None] = []
        handed_out: set[Any] = set()
        for document_id in ids:
            document = found.get(document_id)
            if document is not None and document_id in handed_out:
                document = copy.deepcopy(document)  # the same id twice: one copy each
            handed_out.add(document_id)
            results.append(document)
        return results


WRITE_MARK = "write_mark"
"""Set by an update that left in a group: a bulk result counts the updates that matched, not
which, so each sets a fresh mark and the stored mark tells whose update landed."""


class GroupUpdates:
    """Guarded `update_one({"_id": x, ...}, update)` calls of one collection, grouped into one
    unordered `bulk_write`. Each caller learns whether its own update was applied (its guard
    matched, or its upsert inserted): when fewer were than were sent, one `find` of the marks
    tells which. If the command failed (a unique index refused a statement: FerretDB 1.x stops
    at the first and does not say which), each update that did not land is tried again alone,
    so the refusal reaches its own caller as DuplicateKeyError, as with `update_one`."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection
        self._group: GroupCommit[tuple[Document, Document, bool], bool] = GroupCommit(self._write)

    async def update_one(self, guard: Document, update: Document, *, upsert: bool = False) -> bool:
        """Whether the update was applied."""
        return await self._group.submit((guard, update, upsert))

    async def _alone(self, guard: Document, update: Document, upsert: bool) -> bool | Exception:
        try:
            one = await self._collection.update_one(guard, update, upsert=upsert)
        except DuplicateKeyError as refused:
            return refused
        return one.matched_count == 1 or one.upserted_id is not None

    async def _write(
        self, items: Sequence[tuple[Document, Document, bool]]
    ) -> list[bool | Exception]:
        if len(items) == 1:
            return [await self._alone(*items[0])]
        marks = [uuid4().hex for _ in items]
        writes = [
            UpdateOne(
                guard,
                {**update, "$set": {**update.get("$set", {}), WRITE_MARK: mark}},
                upsert=upsert,
            )
            for (guard, update, upsert), mark in zip(items, marks, strict=True)
        ]
        try:
            result = await self._collection.bulk_write(writes, ordered=False)
            if result.matched_count + result.upserted_count == len(writes):
                return [True] * len(writes)
            failed = False
        # KeyError: PyMongo cannot read FerretDB 1.x's answer to a refused statement (it lacks
        # `nModified`); MongoDB's answer raises BulkWriteError.
        except (PyMongoError, KeyError):
            failed = True
        ids = list(dict.fromkeys(guard["_id"] for guard, _, _ in items))
        stored = {
            document["_id"]: document.get(WRITE_MARK)
            async for document in self._collection.find({"_id": {"$in": ids}}, {WRITE_MARK: 1})
        }
        results: list[bool | Exception] = []
        for item, mark in zip(items, marks, strict=True):
            landed = stored.get(item[0]["_id"]) == mark
            results.append(await self._alone(*item) if failed and not landed else landed)
        return results


class GroupInserts:
    """`insert_one` calls of one collection with deterministic `_id`s, grouped into one
    unordered insert; each caller learns whether its document is new (False: its `_id` was
    already stored)."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection
        self._group: GroupCommit[Document, bool] = GroupCommit(self._insert)

    async def insert_new(self, document: Document) -> bool:
        return await self._group.submit(document)

    async def _insert(self, documents: Sequence[Document]) -> list[bool]:
        inserted = {id(document) for document in await insert_new(self._collection, documents)}
        return [id(document) in inserted for document in documents]


class InsertBehind:
    """Inserts that the caller does not wait for: queued, then written together (one bulk
    insert) at most `delay_seconds` later, or at once when `max_items` are queued. Until then
    `queued` answers for them. A duplicate `_id` is already stored; a failed write is tried
    again with the next one.

    Only for records whose loss in a crash within that delay is tolerated: the caller must
    have an answer without them."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        *,
        delay_seconds: float = 0.5,
        max_items: int = MAX_STATEMENTS,
        max_queued: int = 10_000,
    ) -> None:
        self._collection = collection
        self._delay = delay_seconds
        self._max_items = max_items
        self._max_queued = max_queued
        self._queued: dict[Any, Document] = {}
        self._writer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def add(self, document: Document) -> None:
        if len(self._queued) >= self._max_queued:
            # The database has been failing for a while: keep memory bounded; the oldest
            # records go (their callers' fallback answers for them).
            self._queued.pop(next(iter(self._queued)))
        self._queued[document["_id"]] = document
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_later(), name="insert-behind")

    def queued(self, document_id: Any) -> Document | None:
        return self._queued.get(document_id)

    async def flush(self) -> None:
        """Write everything queued now (on shutdown: nothing is left behind)."""
        async with self._lock:
            while self._queued:
                await self._write_some()

    async def _write_later(self) -> None:
        while self._queued:
            if len(self._queued) < self._max_items:
                await asyncio.sleep(self._delay)
            try:
                async with self._lock:
                    await self._write_some()
            except Exception:  # database unavailable: the records stay queued
                log.warning("insert-behind write failed; retrying", exc_info=True)
                await asyncio.sleep(self._delay)

    async def _write_some(self) -> None:
        documents = list(self._queued.values())[: self._max_items]
        if documents:
            await insert_new(self._collection, documents)
        for document in documents:
            if self._queued.get(document["_id"]) is document:
                del self._queued[document["_id"]]

"""The embedded outbox: events ride inside the aggregate's own document, then a relay publishes.

FerretDB has no multi-document transactions, so the state change and the events it causes
are stored in one single-document write (`outbox` array field). The relay publishes them
right after the write (fast path) and a poller republishes anything a crash left behind.
Removal waits up to a second so that one write clears every event a document got meanwhile:
a guarded write that empties the outbox when it holds exactly what was published. An outbox
that got another event after the publish is cleared at the next round, with that event; one
that misses twice has its published elements `$pull`ed one by one (the only `$pull` form
FerretDB honours).
Publishing is at-least-once: consumers are idempotent by `event_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from juniper_shared.batching import MAX_STATEMENTS, bulk_write_in_chunks
from juniper_shared.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_SECONDS
from juniper_shared.mongo import Document
from juniper_shared.producer import EventPublisher, OutgoingMessage

log = logging.getLogger(__name__)

OUTBOX_FIELD = "outbox"
PENDING_FIELD = "outbox_pending"
"""True from the write that adds events until the poller sees the outbox empty. The poller
looks for it, not for a non-empty outbox: FerretDB 1.x pushes equality on a scalar down to
PostgreSQL, but `{outbox: {$ne: []}}` made it decode every document of the collection in Go
(measured: 9.6 s per poll at 20,000 orders; 0.12 s with the flag)."""


class OutboxRelay:
    """Publishes outbox events of the given collections and removes them once Kafka has them."""

    def __init__(
        self,
        publisher: EventPublisher,
        collections: Mapping[str, AsyncCollection[Document]],
        *,
        poll_seconds: float = 5.0,
        poll_limit: int = 500,
        clear_delay_seconds: float = 1.0,
    ) -> None:
        self._publisher = publisher
        self._collections = collections
        self._poll_seconds = poll_seconds
        self._grace_seconds = max(1.0, poll_seconds)
        self._poll_limit = poll_limit
        # Two rounds fit in the grace, so no poller (ours or another replica's) republishes an
        # event that only waits for its clearing write.
        self._clear_delay = min(clear_delay_seconds, self._grace_seconds / 3)
        self._pending: list[tuple[str, Any, OutgoingMessage]] = []
        self._published: dict[str, dict[Any, list[Document]]] = {}
        """Published entries not yet removed from their documents, per collection and document."""
        self._missed_once: dict[str, set[Any]] = {}
        """Documents whose last clearing write missed: at the next miss their entries are pulled."""
        self._clear_due: float | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def notify(
        self, collection: str, document_id: Any, messages: Sequence[OutgoingMessage]
    ) -> None:
        """Called right after a write that stored `messages` in the document's outbox."""
        self._pending.extend((collection, document_id, message) for message in messages)
        OUTBOX_BACKLOG.set(len(self._pending))
        self._wake.set()

    async def create_indexes(self) -> None:
        """The poller's lookup by the pending flag, from an index (FerretDB with our patch:
        GIN; MongoDB: a plain index on the flag)."""
        for collection in self._collections.values():
            await collection.create_index([(PENDING_FIELD, ASCENDING)])

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Publish what is pending, then stop the loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Publish every event notified so far and clear it from its document."""
        await self._publish_pending()
        while self._published:  # a document that misses twice is pulled: this ends
            await self._clear_published()

    async def _publish_pending(self) -> None:
        """Publish every event notified so far; their clearing write comes within the delay."""
        async with self._lock:
            while self._pending:
                batch, self._pending = self._pending, []
                OUTBOX_BACKLOG.set(0)
                try:
                    await self._publish(batch)
                except Exception:
                    # Put them back in front: the next flush retries, the poller is the safety net.
                    self._pending[:0] = batch
                    OUTBOX_BACKLOG.set(len(self._pending))
                    raise

    async def poll_once(self) -> int:
        """Republish events a crash left in documents; returns how many were found.

        Runs under the relay's lock and skips events already queued by the fast path, so an
        event is not published twice by this process (other processes may still: consumers
        are idempotent by `event_id`).
        """
        async with self._lock:
            queued = {message.event_id for _, _, message in self._pending} | {
                entry["event_id"]
                for by_document in self._published.values()
                for entries in by_document.values()
                for entry in entries
            }
            # A write lands before its writer calls notify(); entries younger than this are
            # left to the fast path so the poller does not race it into a duplicate.
            settled_before = datetime.now(UTC) - timedelta(seconds=self._grace_seconds)
            found: list[tuple[str, Any, OutgoingMessage]] = []
            oldest: datetime | None = None
            published: dict[str, list[Any]] = {}
            for name, collection in self._collections.items():
                cursor = collection.find({PENDING_FIELD: True}, {OUTBOX_FIELD: 1}).limit(
                    self._poll_limit
                )
                async for document in cursor:
                    if not document.get(OUTBOX_FIELD):
                        published.setdefault(name, []).append(document["_id"])
                    for entry in document.get(OUTBOX_FIELD) or ():
                        if entry.get("event_id") in queued:
                            continue
                        occurred_at = _occurred_at(entry)
                        if occurred_at is not None and occurred_at > settled_before:
                            continue
                        found.append((name, document["_id"], OutgoingMessage.from_document(entry)))
                        if occurred_at is not None and (oldest is None or occurred_at < oldest):
                            oldest = occurred_at
            OUTBOX_OLDEST_SECONDS.set(
                (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0
            )
            if found:
                await self._publish(found)
                await self._clear_published_locked()
                log.info("outbox poller republished %d events", len(found))
            await self._lower_flags(published)
            return len(found)

    async def _lower_flags(self, published: Mapping[str, list[Any]]) -> None:
        """Clear the pending flag of documents whose outbox is empty; the filter re-checks
        emptiness in the same write, so an event added meanwhile keeps the flag up."""
        for name, document_ids in published.items():
            await bulk_write_in_chunks(
                self._collections[name],
                [
                    UpdateOne(
                        {"_id": document_id, PENDING_FIELD: True, OUTBOX_FIELD: []},
                        {"$set": {PENDING_FIELD: False}},
                    )
                    for document_id in document_ids
                ],
            )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_poll = loop.time()
        while True:
            try:
                if loop.time() >= next_poll:
                    next_poll = loop.time() + self._poll_seconds
                    await self.poll_once()
                await self._publish_pending()
                if self._clear_due is not None and loop.time() >= self._clear_due:
                    await self._clear_published()
            except Exception:
                log.exception("outbox relay failed; will retry")
                await asyncio.sleep(1.0)
            wake_at = next_poll if self._clear_due is None else min(next_poll, self._clear_due)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, wake_at - loop.time()))
            self._wake.clear()

    async def _publish(self, batch: list[tuple[str, Any, OutgoingMessage]]) -> None:
        """Publish, then remember each entry for the clearing write. The write waits up to the
        clear delay, so a document changed again meanwhile (a seller's next step, an invoice
        paid right after it was issued) is cleared once for all its events."""
        await self._publisher.publish([message for _, _, message in batch])
        for name, document_id, message in batch:
            self._published.setdefault(name, {}).setdefault(document_id, []).append(
                outbox_entry(message)
            )
        if self._clear_due is None:
            self._clear_due = asyncio.get_running_loop().time() + self._clear_delay

    async def _clear_published(self) -> None:
        async with self._lock:
            await self._clear_published_locked()

    async def _clear_published_locked(self) -> None:
        published, self._published, self._clear_due = self._published, {}, None
        missed_once, self._missed_once = self._missed_once, {}
        try:
            for name in list(published):
                collection = self._collections[name]
                again = await self._clear(collection, published[name], missed_once.get(name, ()))
                if again:
                    # Nothing else was published meanwhile: publishing holds the same lock.
                    self._published[name] = again
                    self._missed_once[name] = set(again)
                del published[name]
                missed_once.pop(name, None)
        except Exception:
            # Keep what was not cleared, and its misses, for the next attempt (or the poller,
            # after a restart).
            self._published.update(published)
            self._missed_once.update(missed_once)
            raise
        finally:
            if self._published:
                self._clear_due = asyncio.get_running_loop().time() + self._clear_delay

    async def _clear(
        self,
        collection: AsyncCollection[Document],
        published: Mapping[Any, list[Document]],
        missed_once: Collection[Any],
    ) -> dict[Any, list[Document]]:
        """Remove published entries; returns those of documents to clear at the next round.

        Usually the outbox holds exactly what was published, and one guarded write empties it
        and lowers the pending flag. A document it misses has had another event added since
        the publish, mostly by this process, which publishes it before the next round: the
        entries wait for that round, whose one write then clears both. A document that misses
        twice (an event another process added, not yet published) has this process's entries
        `$pull`ed one by one, and the poller lowers the flag once the outbox is empty. Only the
        documents that missed are read back, never the others of their bulk write.
        """
        again: dict[Any, list[Document]] = {}
        pulls: list[UpdateOne] = []
        document_ids = list(published)
        for start in range(0, len(document_ids), MAX_STATEMENTS):
            chunk = document_ids[start : start + MAX_STATEMENTS]
            result = await collection.bulk_write(
                [
                    UpdateOne(
                        {"_id": document_id, OUTBOX_FIELD: published[document_id]},
                        {"$set": {OUTBOX_FIELD: [], PENDING_FIELD: False}},
                    )
                    for document_id in chunk
                ],
                ordered=False,
            )
            if result.matched_count == len(chunk):
                continue
            missed = collection.find(
                {"_id": {"$in": chunk}, PENDING_FIELD: True}, {OUTBOX_FIELD: 1}
            )
            async for document in missed:
                document_id = document["_id"]
                mine = {entry["event_id"] for entry in published[document_id]}
                # As stored, so that the next guarded write or `$pull` matches them exactly.
                left = [e for e in document.get(OUTBOX_FIELD) or () if e.get("event_id") in mine]
                if not left:
                    continue
                if document_id in missed_once:
                    pulls += [
                        UpdateOne({"_id": document_id}, {"$pull": {OUTBOX_FIELD: e}}) for e in left
                    ]
                else:
                    again[document_id] = left
        await bulk_write_in_chunks(collection, pulls)
        return again


def _occurred_at(entry: Mapping[str, Any]) -> datetime | None:
    try:
        value = json.loads(entry["payload"])["occurred_at"]
        return datetime.fromisoformat(value)
    except (KeyError, TypeError, ValueError):
        return None


def stage_events(update: dict[str, Any], messages: Sequence[OutgoingMessage]) -> None:
    """Add to an update of a document: the messages appended to its outbox, the flag raised."""
    if messages:
        update.setdefault("$push", {})[OUTBOX_FIELD] = {
            "$each": [outbox_entry(message) for message in messages]
        }
        update.setdefault("$set", {})[PENDING_FIELD] = True


def new_outbox(document: dict[str, Any], messages: Sequence[OutgoingMessage] = ()) -> None:
    """Set the outbox fields of a document about to be inserted."""
    document[OUTBOX_FIELD] = [outbox_entry(message) for message in messages]
    document[PENDING_FIELD] = bool(messages)


def outbox_entry(message: OutgoingMessage) -> dict[str, Any]:
    """The exact element stored in (and later `$pull`ed from) a document's outbox; with tracing
    on it carries the writer's trace context, so a later publish continues that trace."""
    return message.as_document()

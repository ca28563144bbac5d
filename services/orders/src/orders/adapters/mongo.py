"""Orders in MongoDB: the repository, its indexes and pages, written for FerretDB's limits
(single-document atomic writes only)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from juniper_shared.batching import GroupReads, GroupUpdates
from juniper_shared.contracts.events import Envelope
from juniper_shared.inbox import PROCESSED_FIELD, insert_new
from juniper_shared.mongo import EXACT_PUSHDOWN, Document, count_exact, replace_index
from juniper_shared.outbox import (
    OUTBOX_FIELD,
    PENDING_FIELD,
    OutboxRelay,
    new_outbox,
    stage_events,
)
from juniper_shared.producer import OutgoingMessage
from juniper_shared.recent import RecentDocuments
from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from orders.adapters.documents import (
    DEADLINE,
    REQUEST_MARKS,
    WINDOW,
    order_from_document,
    order_to_document,
    to_millis,
)
from orders.application.ports import Page, Reaction, Stored, VersionConflict
from orders.domain.errors import InvalidState
from orders.domain.order import Order, Status

Row = TypeVar("Row")


ORDERS = "orders"
MILLIS_PER_DAY = 86_400_000
HIDDEN = "hidden"
"""Set on an order split off another until the parent's write commits."""


async def create_indexes(db: AsyncDatabase[Document]) -> None:
    """Indexes for the seller's views, in the views' order, so a page reads its own rows only.
    Each replaces the index of the same keys minus the last that earlier versions created."""
    await replace_index(
        db[ORDERS],
        "seller_id_1_placed_at_-1",
        [("seller_id", ASCENDING), ("placed_at", DESCENDING), ("_id", DESCENDING)],
        name="seller_newest_first_btree",
    )
    # The sweeper's page: pending orders by deadline, read from the index (never a scan).
    await db[ORDERS].create_index(
        [("status", ASCENDING), (DEADLINE, ASCENDING)], name="pending_deadline_btree"
    )
    # A seller's pending orders whose deadline was computed with one window.
    await db[ORDERS].create_index(
        [("seller_id", ASCENDING), ("status", ASCENDING), (WINDOW, ASCENDING)],
        name="seller_pending_window_btree",
    )
    await replace_index(
        db["customers"],
        "seller_id_1",
        [("seller_id", ASCENDING), ("_id", ASCENDING)],
        name="seller_customers_btree",
    )


class MongoOrders:
    def __init__(self, db: AsyncDatabase[Document], relay: OutboxRelay) -> None:
        self._orders: AsyncCollection[Document] = db[ORDERS]
        self._relay = relay
        # Concurrent requests' loads by _id share one `find` (group commit of reads).
        self._reads = GroupReads(self._orders)
        self._updates = GroupUpdates(self._orders)
        # What this process stored last: a change to it needs no load first.
        self._recent = RecentDocuments(self._orders.codec_options)

    async def get(self, order_id: str, *, recent: bool = False) -> Order | None:
        if recent and (known := self._recent.get(order_id)) is not None:
            return order_from_document(known)
        document = await self._reads.get(order_id)
        if document is None:
            return None
        if document.get(HIDDEN):
            # A split whose parent write may not have happened: visible only if the parent has it.
            parent = await self._orders.find_one(
                {"_id": document.get("split_from")}, {"split_into": 1}
            )
            if parent is None or order_id not in (parent.get("split_into") or ()):
                return None
            await self.reveal(order_id)
        else:
            self._recent.remember(document)
        return order_from_document(document)

    async def save(
        self,
        order: Order,
        events: Sequence[Envelope],
        *,
        processed_event_id: str | None = None,
        due_by: datetime | None = None,
    ) -> None:
        document = order_to_document(order)
        order_id = document.pop("_id")
        # The deadline moves with the seller's window outside the version (move_deadlines):
        # a change never writes back the one it read.
        document.pop(DEADLINE, None)
        document.pop(WINDOW, None)
        guard: Document = {"_id": order_id, "version": order.version - 1}
        if due_by is not None:
            # An expiry: the order must still be pending and past its deadline as stored now.
            guard["status"] = Status.PENDING.value
            guard[DEADLINE] = {"$lte": to_millis(due_by)}
        messages = [OutgoingMessage.of(event) for event in events]
        update: Document = {"$set": document}
        if processed_event_id is not None:
            guard[PROCESSED_FIELD] = {"$ne": processed_event_id}
            update["$push"] = {PROCESSED_FIELD: processed_event_id}
        stage_events(update, messages)
        if not await self._updates.update_one(guard, update):
            self._recent.forget(order_id)
            if due_by is not None:
                raise VersionConflict(None)  # accepted, rejected or rescheduled meanwhile
            current = await self._orders.find_one(
                {"_id": order_id}, {"version": 1, PROCESSED_FIELD: 1}
            )
            if current is not None and processed_event_id in (current.get(PROCESSED_FIELD) or ()):
                return  # this event was applied before: the duplicate changes nothing
            raise VersionConflict(current["version"] if current else None)
        document["_id"] = order_id
        self._recent.remember(document)
        self._relay.notify(ORDERS, order_id, messages)

    async def get_many(self, order_ids: Sequence[str], *, recent: bool) -> dict[str, Stored]:
        documents: dict[str, Document] = {}
        if recent:
            documents = {i: d for i in order_ids if (d := self._recent.get(i)) is not None}
        missing = [order_id for order_id in order_ids if order_id not in documents]
        if missing:
            async for document in self._orders.find({"_id": {"$in": missing}}):
                self._recent.remember(document)
                documents[document["_id"]] = document
        return {
            order_id: Stored(
                order_from_document(document),
                frozenset(document.get(PROCESSED_FIELD) or ()),
            )
            for order_id, document in documents.items()
        }

    async def save_many(self, changes: Sequence[Reaction]) -> set[str]:
        writes = []
        for change in changes:
            document = order_to_document(change.order)
            del document["_id"]
            # As in `save`: the deadline moves outside the version.
            document.pop(DEADLINE, None)
            document.pop(WINDOW, None)
            writes.append(
                UpdateOne(
                    {
                        "_id": change.order.order_id,
                        "version": change.order.version - 1,
                        # A copy that missed an event applied since is no base for this one.
                        PROCESSED_FIELD: {"$nin": change.event_ids},
                    },
                    {
                        "$set": document,
                        "$push": {PROCESSED_FIELD: {"$each": change.event_ids}},
                    },
                )
            )
        if not writes:
            return set()
        result = await self._orders.bulk_write(writes, ordered=False)
        if result.matched_count == len(writes):
            conflicted: set[str] = set()
        else:
            # Which writes missed: an order that does not carry all its events' ids now.
            wanted = {change.order.order_id: set(change.event_ids) for change in changes}
            conflicted = set(wanted)
            async for stored in self._orders.find(
                {"_id": {"$in": list(wanted)}}, {PROCESSED_FIELD: 1}
            ):
                if wanted[stored["_id"]] <= set(stored.get(PROCESSED_FIELD) or ()):
                    conflicted.discard(stored["_id"])
        for change in changes:
            order_id = change.order.order_id
            if order_id in conflicted:
                self._recent.forget(order_id)
            else:
                self._recent.remember(order_to_document(change.order))
        return conflicted

    async def add_placed(self, orders: Sequence[Order]) -> list[str]:
        plain: dict[str, Document] = {}
        documents = []
        for order in orders:
            plain[order.order_id] = order_to_document(order)
            document = dict(plain[order.order_id])
            new_outbox(document)
            document[PROCESSED_FIELD] = []
            documents.append(document)
        inserted = [document["_id"] for document in await insert_new(self._orders, documents)]
        for order_id in inserted:
            self._recent.remember(plain[order_id])
        return inserted

    async def pending_by_deadline(self, limit: int) -> list[Order]:
        # Vouched exact (a string and a bool; the deadline an integer in every pending order):
        # PostgreSQL reads the first `limit` rows of pending_deadline_btree, whatever the table.
        cursor = (
            self._orders.find(
                {"status": Status.PENDING.value, HIDDEN: {"$ne": True}},
                {"history": 0, OUTBOX_FIELD: 0, PENDING_FIELD: 0, PROCESSED_FIELD: 0},
                comment=EXACT_PUSHDOWN,
            )
            .sort([(DEADLINE, ASCENDING)])
            .limit(limit)
        )
        return [order_from_document(document) async for document in cursor]

    async def schedule(
        self, order_id: str, *, expires_at: datetime, days: int, was_days: int | None
    ) -> bool:
        result = await self._orders.update_one(
            {
                "_id": order_id,
                "status": Status.PENDING.value,
                WINDOW: str(was_days) if was_days else {"$exists": False},
            },
            {"$set": {DEADLINE: to_millis(expires_at), WINDOW: str(days)}},
        )
        return result.modified_count == 1

    async def move_deadlines(
        self, seller_id: str, *, from_days: int, to_days: int, chunk: int = 100
    ) -> int:
        """Page by page: ids from seller_pending_window_btree, then one update of those ids,
        guarded by the window they still have; until no pending order has the old window."""
        shift = (to_days - from_days) * MILLIS_PER_DAY
        query: Document = {
            "seller_id": seller_id,
            "status": Status.PENDING.value,
            WINDOW: str(from_days),
        }
        moved = 0
        while True:
            ids = [
                document["_id"]
                async for document in self._orders.find(
                    query, {"_id": 1}, comment=EXACT_PUSHDOWN
                ).limit(chunk)
            ]
            if not ids:
                return moved
            result = await self._orders.update_many(
                {"_id": {"$in": ids}, **query},
                {"$inc": {DEADLINE: shift}, "$set": {WINDOW: str(to_days)}},
            )
            moved += result.modified_count

    async def add_split(self, child: Order) -> None:
        document = order_to_document(child)
        document[HIDDEN] = True
        new_outbox(document)
        document[PROCESSED_FIELD] = []
        # Replace, not insert: a split retried after a crash rewrites the same hidden order, and
        # only that one: an order of that id placed otherwise (another seller's) is never touched.
        mine = {"_id": child.order_id, "seller_id": child.seller_id, "split_from": child.split_from}
        try:
            await self._orders.replace_one(mine, document, upsert=True)
        except DuplicateKeyError:
            raise InvalidState(
                f"the new order's id {child.order_id} is taken by another order; "
                "this order cannot be split"
            ) from None

    async def reveal(self, order_id: str) -> None:
        await self._orders.update_one({"_id": order_id}, {"$set": {HIDDEN: False}})

    async def page(
        self, seller_id: str, *, status: str | None, page: int, page_size: int
    ) -> Page[Order]:
        # Vouched exact (strings and a bool, one type each): sorted, paged and counted by the
        # database from the seller_newest_first index, whatever the seller's number of orders.
        query: Document = {"seller_id": seller_id, HIDDEN: {"$ne": True}}
        if status is not None:
            query["status"] = status
        return await exact_page(
            self._orders,
            query,
            projection={
                "history": 0,
                REQUEST_MARKS: 0,
                OUTBOX_FIELD: 0,
                PENDING_FIELD: 0,
                PROCESSED_FIELD: 0,
            },
            sort=[("placed_at", DESCENDING), ("_id", DESCENDING)],
            page=page,
            page_size=page_size,
            to_row=order_from_document,
        )


async def exact_page(
    collection: AsyncCollection[Document],
    query: Document,
    *,
    sort: list[tuple[str, int]],
    page: int,
    page_size: int,
    to_row: Callable[[Document], Row],
    projection: Document | None = None,
) -> Page[Row]:
    """One page of a query vouched exact (EXACT_PUSHDOWN): filtered, sorted, skipped and limited
    by the database from its index; the total from the page when it tells it, else a count."""
    offset = (page - 1) * page_size
    cursor = (
        collection.find(query, projection, comment=EXACT_PUSHDOWN)
        .sort(sort)
        .skip(offset)
        .limit(page_size)
    )
    rows = [to_row(document) async for document in cursor]
    total = total_from_page(offset, len(rows), page_size)
    if total is None:
        total = await count_exact(collection, query)
    return Page(rows=rows, total_count=total)


def total_from_page(offset: int, rows: int, page_size: int) -> int | None:
    """The total a page implies, so that most tables need no count round trip: a page with rows
    that is not full is the last one, and the first page of an empty table says zero. A full
    page, or an empty page past the first (the offset may be past the end), says nothing."""
    if rows < page_size and (rows > 0 or offset == 0):
        return offset + rows
    return None

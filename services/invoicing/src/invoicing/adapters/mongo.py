"""MongoDB repositories, written for FerretDB's limits: single-document atomic writes only."""

from __future__ import annotations

from collections.abc import Sequence

from juniper_shared.batching import GroupInserts, GroupReads, GroupUpdates, bulk_write_in_chunks
from juniper_shared.contracts.events import Envelope
from juniper_shared.contracts.registry import ForgedEvent
from juniper_shared.inbox import PROCESSED_FIELD, insert_new
from juniper_shared.mongo import EXACT_PUSHDOWN, Document
from juniper_shared.outbox import OUTBOX_FIELD, OutboxRelay, new_outbox, stage_events
from juniper_shared.producer import OutgoingMessage
from juniper_shared.recent import RecentDocuments
from pymongo import ASCENDING, DESCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from invoicing.adapters.documents import (
    NUMBER_KEY,
    invoice_from_document,
    invoice_to_document,
    number_key,
    order_from_document,
    order_to_document,
)
from invoicing.application.ports import NumberTaken
from invoicing.domain.invoice import Invoice
from invoicing.domain.order import InvoiceableOrder

ORDERS = "orders"
INVOICES = "invoices"
MIGRATIONS = "migrations"


async def create_indexes(db: AsyncDatabase[Document]) -> None:
    """Indexes for the seller's lookups, and the one that keeps numbers unique."""
    invoices = db[INVOICES]
    await invoices.create_index([("order_id", ASCENDING)])
    # The seller's highest number: the first row of this index (see `highest_number`).
    await invoices.create_index(
        [("seller_id", ASCENDING), ("sequence", DESCENDING)], name="seller_highest_number_btree"
    )
    await _key_numbered_invoices(db)
    # Drafts have no key: sparse, so they are not in the index (FerretDB accepts the option
    # and, on PostgreSQL, leaves a missing key out of a unique index anyway).
    await invoices.create_index(NUMBER_KEY, name="seller_number_unique", unique=True, sparse=True)


async def _key_numbered_invoices(db: AsyncDatabase[Document]) -> None:
    """Give the number key to invoices numbered before it existed, once per database, so the
    unique index covers every number ever given."""
    done = {"_id": "invoice-number-keys"}
    if await db[MIGRATIONS].find_one(done) is not None:
        return
    invoices = db[INVOICES]
    keyed = [
        UpdateOne(
            {"_id": document["_id"]},
            {"$set": {NUMBER_KEY: number_key(document["seller_id"], document["sequence"])}},
        )
        async for document in invoices.find(
            {"sequence": {"$ne": None}, NUMBER_KEY: {"$exists": False}},
            {"seller_id": 1, "sequence": 1},
        )
    ]
    if keyed:
        await bulk_write_in_chunks(invoices, keyed)
    await db[MIGRATIONS].update_one(done, {"$set": {"keyed": len(keyed)}}, upsert=True)


FIRST_VERSION = 1
"""An order's version when it is placed (or split off): its first snapshot."""


class MongoOrderBook:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._orders: AsyncCollection[Document] = db[ORDERS]
        # Concurrent loads by _id share one `find` (group commit of reads).
        self._reads = GroupReads(self._orders)

    async def get(self, order_id: str) -> InvoiceableOrder | None:
        document = await self._reads.get(order_id)
        return order_from_document(document) if document else None

    async def apply(self, orders: Sequence[InvoiceableOrder]) -> int:
        """Store each snapshot unless a newer version is stored: events out of order or twice
        do no harm. Returns how many were stored.

        One round trip per kind of snapshot in the batch: an order's first version is inserted
        (a stored order refuses it), a later one replaces an older version of the same seller
        (guarded). Only if a replace finds nothing to replace (the order is not here yet, or a
        newer version is) do those snapshots go again as inserts, which a stored order refuses.
        Only if something was refused is it read back: a snapshot of an order another seller
        holds raises ForgedEvent (the others are stored all the same)."""
        newest: dict[str, InvoiceableOrder] = {}
        for order in orders:
            if order.order_id not in newest or newest[order.order_id].version < order.version:
                newest[order.order_id] = order
        documents = [order_to_document(order) for order in newest.values()]
        first = [document for document in documents if document["version"] <= FIRST_VERSION]
        later = [document for document in documents if document["version"] > FIRST_VERSION]
        inserted = {document["_id"] for document in await insert_new(self._orders, first)}
        refused = [document for document in first if document["_id"] not in inserted]
        stored = len(inserted)
        if later:
            replaced = await bulk_write_in_chunks(
                self._orders,
                [
                    ReplaceOne(
                        {
                            "_id": document["_id"],
                            "seller_id": document["seller_id"],
                            "version": {"$lt": document["version"]},
                        },
                        document,
                    )
                    for document in later
                ],
            )
            stored += replaced
            if replaced < len(later):
                inserted = {document["_id"] for document in await insert_new(self._orders, later)}
                stored += len(inserted)
                refused += [document for document in later if document["_id"] not in inserted]
        if refused:
            await self._refuse_other_sellers(refused)
        return stored

    async def _refuse_other_sellers(self, refused: list[Document]) -> None:
        seller_of = {document["_id"]: document["seller_id"] for document in refused}
        async for held in self._orders.find({"_id": {"$in": list(seller_of)}}, {"seller_id": 1}):
            if held["seller_id"] != seller_of[held["_id"]]:
                raise ForgedEvent(
                    f"a snapshot of order {held['_id']} names seller "
                    f"{seller_of[held['_id']]!r}; the order is another seller's"
                )


class MongoInvoices:
    def __init__(self, db: AsyncDatabase[Document], relay: OutboxRelay) -> None:
        self._invoices: AsyncCollection[Document] = db[INVOICES]
        self._relay = relay
        self._reads = GroupReads(self._invoices, projection={OUTBOX_FIELD: 0})
        # Concurrent first previews share one insert (group commit); a draft has no number, so
        # the unique number index never refuses one.
        self._inserts = GroupInserts(self._invoices)
        self._updates = GroupUpdates(self._invoices)
        # What this process stored last: a change to it needs no load first.
        self._recent = RecentDocuments(self._invoices.codec_options)

    async def get(self, invoice_id: str, *, recent: bool = False) -> Invoice | None:
        document = await self._recent.get_or_read(invoice_id, self._reads.get, recent=recent)
        return invoice_from_document(document) if document else None

    def kept(self, invoice_id: str) -> Invoice | None:
        document = self._recent.get(invoice_id)
        return invoice_from_document(document) if document else None

    async def for_order(self, seller_id: str, order_id: str) -> list[Invoice]:
        cursor = self._invoices.find(
            {"order_id": order_id, "seller_id": seller_id}, {OUTBOX_FIELD: 0}
        ).limit(100)
        return [invoice_from_document(document) async for document in cursor]

    async def save(
        self, invoice: Invoice, events: Sequence[Envelope], *, previous_version: int
    ) -> bool:
        plain = invoice_to_document(invoice)
        messages = [OutgoingMessage.of(event) for event in events]
        if previous_version == 0:
            document = dict(plain)
            new_outbox(document, messages)
            if not await self._inserts.insert_new(document):
                self._recent.forget(invoice.invoice_id)
                return False
        else:
            changes = dict(plain)
            invoice_id = changes.pop("_id")
            update: Document = {"$set": changes}
            stage_events(update, messages)
            try:
                applied = await self._updates.update_one(
                    {"_id": invoice_id, "version": previous_version}, update
                )
            except DuplicateKeyError:
                self._recent.forget(invoice_id)
                raise NumberTaken(invoice_id) from None
            if not applied:
                self._recent.forget(invoice_id)
                return False
        self._recent.remember(plain)
        if messages:
            self._relay.notify(INVOICES, invoice.invoice_id, messages)
        return True

    async def highest_number(self, seller_id: str) -> int:
        # Vouched exact: PostgreSQL reads the first row of seller_highest_number_btree (a draft's
        # null sorts last, as on MongoDB, which serves it from the same index).
        cursor = (
            self._invoices.find({"seller_id": seller_id}, {"sequence": 1}, comment=EXACT_PUSHDOWN)
            .sort("sequence", DESCENDING)
            .limit(1)
        )
        async for document in cursor:
            return int(document.get("sequence") or 0)
        return 0

    async def get_many(self, invoice_ids: Sequence[str], *, recent: bool) -> dict[str, Invoice]:
        documents: dict[str, Document] = {}
        if recent:
            documents = {i: d for i in invoice_ids if (d := self._recent.get(i)) is not None}
        missing = [invoice_id for invoice_id in invoice_ids if invoice_id not in documents]
        if missing:
            async for document in self._invoices.find({"_id": {"$in": missing}}, {OUTBOX_FIELD: 0}):
                self._recent.remember(document)
                documents[document["_id"]] = document
        return {key: invoice_from_document(document) for key, document in documents.items()}

    async def save_many(self, changes: Sequence[tuple[Invoice, Sequence[Envelope]]]) -> set[str]:
        writes = []
        staged = []
        for invoice, events in changes:
            document = invoice_to_document(invoice)
            del document["_id"]
            messages = [OutgoingMessage.of(event) for event in events]
            update: Document = {"$set": document}
            stage_events(update, messages)
            writes.append(
                UpdateOne({"_id": invoice.invoice_id, "version": invoice.version - 1}, update)
            )
            staged.append((invoice, messages))
        if not writes:
            return set()
        result = await self._invoices.bulk_write(writes, ordered=False)
        conflicted: set[str] = set()
        if result.matched_count < len(writes):
            # Which writes missed: an invoice not at its new version with its last event's id.
            expected = {
                invoice.invoice_id: (invoice.version, invoice.processed_events[-1])
                for invoice, _ in changes
            }
            conflicted = set(expected)
            async for stored in self._invoices.find(
                {"_id": {"$in": list(expected)}}, {"version": 1, PROCESSED_FIELD: 1}
            ):
                version, mark = expected[stored["_id"]]
                if stored["version"] == version and mark in (stored.get(PROCESSED_FIELD) or ()):
                    conflicted.discard(stored["_id"])
        for invoice, messages in staged:
            if invoice.invoice_id in conflicted:
                self._recent.forget(invoice.invoice_id)
                continue
            self._recent.remember(invoice_to_document(invoice))
            if messages:
                self._relay.notify(INVOICES, invoice.invoice_id, messages)
        return conflicted

"""Idempotent consumers on FerretDB: the ids of processed events live in the document they changed.

With no multi-document transactions, "apply the event" and "remember it was applied" must be
one single-document write: the aggregate keeps the last `KEEP` event ids beside its state and
is written back guarded by its version. Inserts use deterministic `_id`s instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from juniper_shared.mongo import Document

PROCESSED_FIELD = "processed_events"
KEEP = 64
"""Event ids remembered per document: redeliveries come within a batch or two, not hundreds."""

DUPLICATE_KEY = 11000


async def insert_new(
    collection: AsyncCollection[Document], documents: Sequence[Document]
) -> list[Document]:
    """Insert documents with deterministic `_id`s; returns those that were not there before.

    One round trip for the whole batch; duplicates (code 11000) are the idempotency at work.
    """
    if not documents:
        return []
    try:
        await collection.insert_many(list(documents), ordered=False)
    except BulkWriteError as error:
        errors = error.details.get("writeErrors", [])
        fatal = [item for item in errors if item.get("code") != DUPLICATE_KEY]
        if fatal:
            raise
        duplicates = {item["index"] for item in errors}
        return [doc for index, doc in enumerate(documents) if index not in duplicates]
    return list(documents)

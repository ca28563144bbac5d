"""One-off data migrations an operator runs after an upgrade that asks for one (docs/runbook.md)."""

from __future__ import annotations

from dataclasses import dataclass

from juniper_shared.keys import compound_id
from juniper_shared.mongo import Document
from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

BUYER_LINKS = "buyer_links"
BATCH = 50
"""Writes per bulk request: FerretDB wedges when one command holds too many statements."""


@dataclass(frozen=True)
class Migrated:
    examined: int
    rewritten: int


async def buyer_link_ids(db: AsyncDatabase[Document], *, dry_run: bool = False) -> Migrated:
    """Re-keys the orders service's buyer links from `seller:buyer` to the compound id of the
    seller and buyer each link stores. Safe to run again: a link already keyed is left alone.
    The stored `seller_id`/`buyer_id` are the last writer's, so a link two sellers' ids once
    collided on stays with the seller who wrote it last (the other links the buyer again)."""
    links = db[BUYER_LINKS]
    examined = rewritten = 0
    pending: list[tuple[str, Document]] = []
    async for link in links.find({}):
        examined += 1
        seller_id, buyer_id = link.get("seller_id"), link.get("buyer_id")
        if not isinstance(seller_id, str) or not isinstance(buyer_id, str):
            continue
        new_id = compound_id(seller_id, buyer_id)
        if link["_id"] != new_id:
            pending.append((link["_id"], {**link, "_id": new_id}))
    for start in range(0, len(pending), BATCH):
        batch = pending[start : start + BATCH]
        rewritten += len(batch)
        if dry_run:
            continue
        # A link written under its new id since the upgrade is newer: it stays as it is.
        present = {
            document["_id"]
            async for document in links.find(
                {"_id": {"$in": [new["_id"] for _, new in batch]}}, {"_id": 1}
            )
        }
        # The new document first, then the old one goes: a crash in between leaves both, and
        # running again finishes the job.
        writes = [
            ReplaceOne({"_id": new["_id"]}, new, upsert=True)
            for _, new in batch
            if new["_id"] not in present
        ]
        if writes:
            await links.bulk_write(writes, ordered=False)
        await links.delete_many({"_id": {"$in": [old for old, _ in batch]}})
    return Migrated(examined=examined, rewritten=rewritten)

"""A seller's customers, the buyer links that name them, and the seller's settings: MongoDB
repositories, single-document writes only."""

from __future__ import annotations

from juniper_shared.batching import GroupInserts, GroupReads, GroupUpdates
from juniper_shared.keys import compound_id
from juniper_shared.mongo import Document
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from orders.adapters.documents import customer_from_document, customer_to_document
from orders.adapters.mongo import exact_page
from orders.application.ports import Page, VersionConflict
from orders.domain.customer import Customer
from orders.domain.expiry import SellerSettings


class MongoCustomers:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._customers: AsyncCollection[Document] = db["customers"]
        self._links: AsyncCollection[Document] = db["buyer_links"]
        self._customer_reads = GroupReads(self._customers)
        self._link_reads = GroupReads(self._links)
        # Concurrent accepts of new buyers share their writes (group commit).
        self._customer_inserts = GroupInserts(self._customers)
        self._link_writes = GroupUpdates(self._links)
        # Links are never removed, so a link seen once can be trusted for the process's life.
        self._known_links: dict[tuple[str, str], str] = {}

    async def get(self, customer_id: str) -> Customer | None:
        document = await self._customer_reads.get(customer_id)
        return customer_from_document(document) if document else None

    async def save(self, customer: Customer, *, new: bool) -> None:
        if new:
            if not await self._customer_inserts.insert_new(customer_to_document(customer)):
                existing = await self.get(customer.customer_id)
                if existing is None or existing.seller_id != customer.seller_id:
                    raise DuplicateKeyError(f"customer {customer.customer_id} exists")
            return
        customer.version += 1
        result = await self._customers.replace_one(
            {"_id": customer.customer_id, "version": customer.version - 1},
            customer_to_document(customer),
        )
        if result.matched_count == 0:
            raise VersionConflict(None)

    async def page(self, seller_id: str, *, page: int, page_size: int) -> Page[Customer]:
        # Vouched exact, like the All Orders table: from the seller_customers index.
        return await exact_page(
            self._customers,
            {"seller_id": seller_id},
            sort=[("_id", ASCENDING)],
            page=page,
            page_size=page_size,
            to_row=customer_from_document,
        )

    async def linked_customer(self, seller_id: str, buyer_id: str) -> str | None:
        cached = self._known_links.get((seller_id, buyer_id))
        if cached is not None:
            return cached
        document = await self._link_reads.get(link_id(seller_id, buyer_id))
        if document is None:
            return None
        self._known_links[(seller_id, buyer_id)] = document["customer_id"]
        return str(document["customer_id"])

    async def link_buyer(self, seller_id: str, buyer_id: str, customer_id: str) -> None:
        await self._link_writes.update_one(
            {"_id": link_id(seller_id, buyer_id)},
            {"$set": {"seller_id": seller_id, "buyer_id": buyer_id, "customer_id": customer_id}},
            upsert=True,
        )
        self._known_links[(seller_id, buyer_id)] = customer_id


def link_id(seller_id: str, buyer_id: str) -> str:
    return compound_id(seller_id, buyer_id)


class MongoSellerSettings:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._settings: AsyncCollection[Document] = db["seller_settings"]
        self._reads = GroupReads(self._settings)

    async def get(self, seller_id: str) -> SellerSettings:
        document = await self._reads.get(seller_id) or {}
        default = SellerSettings()
        return SellerSettings(
            buyer_access_requires_approval=bool(
                document.get("buyer_access_requires_approval", True)
            ),
            pending_order_expiry_days=int(
                document.get("pending_order_expiry_days", default.pending_order_expiry_days)
            ),
        )

    async def save(self, seller_id: str, settings: SellerSettings) -> None:
        await self._settings.update_one(
            {"_id": seller_id},
            {
                "$set": {
                    "buyer_access_requires_approval": settings.buyer_access_requires_approval,
                    "pending_order_expiry_days": settings.pending_order_expiry_days,
                }
            },
            upsert=True,
        )

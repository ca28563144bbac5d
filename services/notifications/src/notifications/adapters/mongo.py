"""The delivery log: one document per email, `_id` = the event id that caused it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from juniper_shared.batching import GroupUpdates
from juniper_shared.inbox import insert_new
from juniper_shared.mongo import EXACT_PUSHDOWN, replace_index
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from notifications.application.ports import DeliveryView
from notifications.domain.delivery import Outcome, SendResult, Status, still_to_send
from notifications.domain.notices import Notice

Document = dict[str, Any]

DELIVERIES = "deliveries"
MAX_LISTED = 200
"""Most deliveries listed for one order (a handful is normal: one per event)."""


LISTED_ORDER = [("occurred_at", ASCENDING), ("_id", ASCENDING)]
"""The per-order view's order: the events' order, the event id among simultaneous ones."""


async def create_indexes(db: AsyncDatabase[Document]) -> None:
    """For the seller's per-order view: one index per field that relates an email to an order,
    each in the view's order, so the view reads that order's emails only (replacing the index
    of earlier versions, which left FerretDB reading every email of the seller)."""
    deliveries = db[DELIVERIES]
    await replace_index(
        deliveries,
        "seller_id_1_order_id_1",
        [("seller_id", ASCENDING), ("order_id", ASCENDING), *LISTED_ORDER],
        name="seller_order_emails_btree",
    )
    await deliveries.create_index(
        [("seller_id", ASCENDING), ("related_order_id", ASCENDING), *LISTED_ORDER],
        name="seller_related_order_emails_btree",
    )


def pending_document(notice: Notice, *, now: datetime) -> Document:
    return {
        "_id": notice.event_id,
        "event_type": notice.event_type,
        "occurred_at": notice.occurred_at,
        "seller_id": notice.seller_id,
        "order_id": notice.order_id,
        "related_order_id": notice.related_order_id,
        "invoice_id": notice.invoice_id,
        "template": notice.template,
        "to": notice.to_email,
        "subject": notice.subject,
        "status": Status.PENDING.value,
        "attempts": 0,
        "last_error": None,
        "created_at": now,
        "sent_at": None,
    }


class MongoDeliveryLog:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._deliveries: AsyncCollection[Document] = db[DELIVERIES]
        # The batch's mail workers record outcomes concurrently: one bulk update carries them.
        self._outcomes = GroupUpdates(self._deliveries)

    async def open(self, notices: Sequence[Notice], *, now: datetime) -> list[Notice]:
        inserted = await insert_new(
            self._deliveries, [pending_document(notice, now=now) for notice in notices]
        )
        new_ids = {document["_id"] for document in inserted}
        earlier = [notice.event_id for notice in notices if notice.event_id not in new_ids]
        retry_ids: set[str] = set()
        if earlier:
            async for document in self._deliveries.find({"_id": {"$in": earlier}}, {"status": 1}):
                if still_to_send(document.get("status", "")):
                    retry_ids.add(document["_id"])
        return [n for n in notices if n.event_id in new_ids or n.event_id in retry_ids]

    async def record(self, notice: Notice, result: SendResult, *, now: datetime) -> None:
        changes: Document = {"status": result.status.value, "last_error": result.error or None}
        if result.outcome is Outcome.SENT:
            changes["sent_at"] = now
        await self._outcomes.update(
            {"_id": notice.event_id},
            {"$set": changes, "$inc": {"attempts": result.attempts}},
        )

    async def for_order(self, seller_id: str, order_id: str) -> list[DeliveryView]:
        # Two queries vouched exact (string ids; `related_order_id` a string or null), not one
        # `$or`: each is served by its own index, which FerretDB cannot do for an `$or`.
        found: dict[str, Document] = {}
        for field in ("order_id", "related_order_id"):
            cursor = (
                self._deliveries.find(
                    {"seller_id": seller_id, field: order_id}, comment=EXACT_PUSHDOWN
                )
                .sort(LISTED_ORDER)
                .limit(MAX_LISTED)
            )
            found.update({document["_id"]: document async for document in cursor})
        listed = sorted(found.values(), key=lambda d: (d["occurred_at"], d["_id"]))[:MAX_LISTED]
        return [
            DeliveryView(
                event_id=document["_id"],
                template=document["template"],
                to=document["to"],
                status=document["status"],
                attempts=document.get("attempts", 0),
                sent_at=document.get("sent_at"),
            )
            for document in listed
        ]

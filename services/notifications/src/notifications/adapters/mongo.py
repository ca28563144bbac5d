"""The delivery log: one document per email, `_id` = the event id that caused it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from juniper_shared.mongo import EXACT_PUSHDOWN, Document, replace_index
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from notifications.application.ports import DeliveryView
from notifications.domain.delivery import Outcome, SendResult, Status, still_to_send
from notifications.domain.notices import Notice

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


def delivery_fields(notice: Notice, *, now: datetime) -> Document:
    """What a delivery records of its email, set once, when it is first recorded."""
    return {
        "event_type": notice.event_type,
        "occurred_at": notice.occurred_at,
        "seller_id": notice.seller_id,
        "order_id": notice.order_id,
        "related_order_id": notice.related_order_id,
        "invoice_id": notice.invoice_id,
        "template": notice.template,
        "to": notice.to_email,
        "subject": notice.subject,
        "created_at": now,
    }


class MongoDeliveryLog:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._deliveries: AsyncCollection[Document] = db[DELIVERIES]

    async def still_to_send(self, notices: Sequence[Notice]) -> list[Notice]:
        done = {
            document["_id"]
            async for document in self._deliveries.find(
                {"_id": {"$in": [notice.event_id for notice in notices]}}, {"status": 1}
            )
            if not still_to_send(document.get("status", ""))
        }
        return [notice for notice in notices if notice.event_id not in done]

    async def record(
        self, outcomes: Sequence[tuple[Notice, SendResult | None]], *, now: datetime
    ) -> None:
        writes = []
        for notice, result in outcomes:
            changes: Document = {"status": Status.PENDING.value, "last_error": None}
            if result is not None:
                changes = {"status": result.status.value, "last_error": result.error or None}
            if result is not None and result.outcome is Outcome.SENT:
                changes["sent_at"] = now
            writes.append(
                UpdateOne(
                    {"_id": notice.event_id},
                    {
                        "$set": changes,
                        "$inc": {"attempts": result.attempts if result else 0},
                        "$setOnInsert": delivery_fields(notice, now=now),
                    },
                    upsert=True,
                )
            )
        if writes:
            await self._deliveries.bulk_write(writes, ordered=False)

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

"""MongoDB repositories, written for FerretDB's limits: single-document atomic writes only."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from juniper_shared.batching import GroupReads, GroupUpdates
from juniper_shared.contracts.events import Envelope
from juniper_shared.inbox import PROCESSED_FIELD, insert_new
from juniper_shared.mongo import Document
from juniper_shared.outbox import OUTBOX_FIELD, OutboxRelay, new_outbox, stage_events
from juniper_shared.producer import OutgoingMessage
from juniper_shared.recent import RecentDocuments
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from payments.adapters.sealing import CardSeal, UnreadableCard
from payments.application.ports import PlacedCard, StoredCard, VersionConflict
from payments.domain.payment import (
    Attempt,
    AttemptStatus,
    Card,
    Payment,
    Refund,
    RefundStatus,
)

log = logging.getLogger(__name__)

PAYMENTS = "payments"
CARD_VAULT = "card_vault"
MAX_SPLIT_DEPTH = 20
"""Splits of splits are followed this far up to the order the card was placed with."""


async def create_indexes(db: AsyncDatabase[Document]) -> None:
    """For the pending scan (MongoDB uses it; FerretDB 1.x scans but accepts it)."""
    await db[PAYMENTS].create_index([("status", ASCENDING), ("updated_at", ASCENDING)])


def payment_to_document(payment: Payment, *, now: datetime) -> Document:
    return {
        "_id": payment.invoice_id,
        "seller_id": payment.seller_id,
        "order_id": payment.order_id,
        "amount": payment.amount,
        "currency": payment.currency,
        "method": payment.method,
        "card": {"brand": payment.card.brand, "last4": payment.card.last4}
        if payment.card
        else None,
        "status": payment.status.value,
        "attempts": [_attempt_to_document(attempt) for attempt in payment.attempts],
        "voided_at": payment.voided_at,
        "refund": _refund_to_document(payment.refund) if payment.refund else None,
        # Beside `status`, so the pending scan finds a refund still to be made.
        "refund_status": payment.refund.status.value if payment.refund else None,
        "version": payment.version,
        "correlation_id": payment.correlation_id,
        "updated_at": now,
    }


def _attempt_to_document(attempt: Attempt) -> Document:
    return {
        "attempt": attempt.attempt,
        "idempotency_key": attempt.idempotency_key,
        "status": attempt.status.value,
        "reason": attempt.reason,
        "retryable": attempt.retryable,
        "processor_ref": attempt.processor_ref,
        "at": attempt.at,
        "sent_at": attempt.sent_at,
    }


def _refund_to_document(refund: Refund) -> Document:
    return {
        "attempt": refund.attempt,
        "idempotency_key": refund.idempotency_key,
        "charge_ref": refund.charge_ref,
        "status": refund.status.value,
        "at": refund.at,
        "refund_ref": refund.refund_ref,
        "reason": refund.reason,
    }


def _refund(document: Document) -> Refund:
    return Refund(
        attempt=int(document["attempt"]),
        idempotency_key=document["idempotency_key"],
        charge_ref=document["charge_ref"],
        status=RefundStatus(document["status"]),
        at=document["at"],
        refund_ref=document.get("refund_ref"),
        reason=document.get("reason"),
    )


def payment_from_document(document: Document) -> Payment:
    card = document.get("card")
    return Payment(
        invoice_id=document["_id"],
        seller_id=document["seller_id"],
        order_id=document["order_id"],
        amount=int(document["amount"]),
        currency=document["currency"],
        method=document["method"],
        card=Card(brand=card["brand"], last4=card["last4"]) if card else None,
        attempts=[
            Attempt(
                attempt=int(item["attempt"]),
                idempotency_key=item["idempotency_key"],
                status=AttemptStatus(item["status"]),
                at=item["at"],
                reason=item.get("reason"),
                retryable=bool(item.get("retryable")),
                processor_ref=item.get("processor_ref"),
                sent_at=item.get("sent_at"),
            )
            for item in document["attempts"]
        ],
        version=int(document["version"]),
        correlation_id=document.get("correlation_id") or "",
        voided_at=document.get("voided_at"),
        refund=_refund(document["refund"]) if document.get("refund") else None,
    )


class MongoPayments:
    def __init__(self, db: AsyncDatabase[Document], relay: OutboxRelay) -> None:
        self._payments: AsyncCollection[Document] = db[PAYMENTS]
        self._relay = relay
        # Concurrent loads by _id share one `find` (group commit of reads).
        self._reads = GroupReads(self._payments, projection={OUTBOX_FIELD: 0, PROCESSED_FIELD: 0})
        self._updates = GroupUpdates(self._payments)

    async def get(self, invoice_id: str) -> Payment | None:
        document = await self._reads.get(invoice_id)
        return payment_from_document(document) if document else None

    async def add_new(self, payments: Sequence[tuple[Payment, str]]) -> list[str]:
        documents = []
        for payment, event_id in payments:
            document = payment_to_document(payment, now=payment.updated_at)
            new_outbox(document)
            document[PROCESSED_FIELD] = [event_id]
            documents.append(document)
        return [document["_id"] for document in await insert_new(self._payments, documents)]

    async def save(self, payment: Payment, events: Sequence[Envelope]) -> None:
        """One change since the read: guarded by the version before it (`version - 1`)."""
        document = payment_to_document(payment, now=payment.updated_at)
        invoice_id = document.pop("_id")
        messages = [OutgoingMessage.of(event) for event in events]
        update: Document = {"$set": document}
        stage_events(update, messages)
        if not await self._updates.update_one(
            {"_id": invoice_id, "version": payment.version - 1}, update
        ):
            raise VersionConflict(invoice_id)
        self._relay.notify(PAYMENTS, invoice_id, messages)

    async def pending(self, *, since_before: datetime, limit: int) -> list[str]:
        ids: list[str] = []
        # Two simple filters rather than one `$or`: each is what FerretDB 1.x surely serves.
        for unfinished in (
            {"status": AttemptStatus.PENDING.value},
            {"refund_status": RefundStatus.PENDING.value},
        ):
            cursor = self._payments.find(
                {**unfinished, "updated_at": {"$lt": since_before}}, {"_id": 1}
            ).limit(limit)
            ids += [document["_id"] async for document in cursor if document["_id"] not in ids]
        return ids[:limit]


class MongoCardVault:
    """Card tokens by order id: `{_id, seller_id, sealed_token, key_id, brand, last4}` for placed
    orders (the token sealed with CARD_VAULT_KEY, never stored in the clear),
    `{_id, seller_id, parent_id}` for an order split off another (it pays with the parent's card)."""

    def __init__(self, db: AsyncDatabase[Document], seal: CardSeal) -> None:
        self._cards: AsyncCollection[Document] = db[CARD_VAULT]
        self._seal = seal
        self._reads = GroupReads(self._cards)
        # A vault entry never changes once written: the copy kept here is always current, and
        # the charge of an order whose card this process stored needs no read.
        self._recent = RecentDocuments(self._cards.codec_options)

    async def add_placed(self, cards: Sequence[PlacedCard]) -> None:
        await self._add(
            [
                {
                    "_id": card.order_id,
                    "seller_id": card.seller_id,
                    "sealed_token": self._seal.seal(card.card_token),
                    "key_id": self._seal.key_id,
                    "brand": card.brand,
                    "last4": card.last4,
                }
                for card in cards
            ]
        )

    async def add_split(self, links: Sequence[tuple[str, str, str]]) -> None:
        await self._add(
            [
                {"_id": child, "seller_id": seller_id, "parent_id": parent}
                for child, parent, seller_id in links
            ]
        )

    async def _add(self, documents: list[Document]) -> None:
        # Only what was stored now: an entry stored before stays as it was first written.
        for document in await insert_new(self._cards, documents):
            self._recent.remember(document)

    async def forget(self, seller_id: str, order_ids: Sequence[str]) -> None:
        for order_id in order_ids:
            self._recent.forget(order_id)
        if order_ids:
            # The seller in the filter: an event naming another seller's order removes nothing.
            await self._cards.delete_many({"_id": {"$in": list(order_ids)}, "seller_id": seller_id})

    async def card_for(self, order_id: str) -> StoredCard | None:
        """Follows split links up to the placed order; None while any link is still missing."""
        current: str | None = order_id
        for _ in range(MAX_SPLIT_DEPTH):
            document = await self._recent.get_or_read(current, self._reads.get)
            if document is None:
                return None
            token = self._token_of(document)
            if token:
                return StoredCard(
                    seller_id=document["seller_id"],
                    card_token=token,
                    brand=document.get("brand", ""),
                    last4=document.get("last4", ""),
                )
            current = document.get("parent_id")
            if current is None:
                return None
        return None

    def _token_of(self, document: Document) -> str | None:
        if sealed := document.get("sealed_token"):
            return self._seal.open(sealed)
        # Stored in the clear before tokens were sealed; `reseal` seals it at the next start.
        legacy: str | None = document.get("card_token")
        return legacy

    async def reseal(self) -> int:
        """Seals tokens stored in the clear and those sealed under a previous key with the current
        key, one guarded write each; returns how many. Runs at every start (docs/runbook.md)."""
        stale = {
            "$or": [
                {"card_token": {"$exists": True}},
                {"sealed_token": {"$exists": True}, "key_id": {"$ne": self._seal.key_id}},
            ]
        }
        done = 0
        async for document in self._cards.find(stale):
            if sealed := document.get("sealed_token"):
                try:
                    fresh = self._seal.reseal(sealed)
                except UnreadableCard:
                    log.warning(
                        "card vault: no configured key opens the card of %s", document["_id"]
                    )
                    continue
                guard = {"_id": document["_id"], "sealed_token": sealed}
            else:
                fresh = self._seal.seal(document["card_token"])
                guard = {"_id": document["_id"], "card_token": document["card_token"]}
            result = await self._cards.update_one(
                guard,
                {
                    "$set": {"sealed_token": fresh, "key_id": self._seal.key_id},
                    "$unset": {"card_token": ""},
                },
            )
            done += result.modified_count
        return done

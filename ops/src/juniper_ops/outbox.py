"""The outbox backlog of a service: events stored with a state change but not yet published."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from juniper_shared.mongo import Document
from juniper_shared.outbox import OUTBOX_FIELD, PENDING_FIELD
from pymongo import AsyncMongoClient

OUTBOX_COLLECTIONS: Mapping[str, tuple[str, ...]] = {
    "orders": ("orders",),
    "invoicing": ("invoices",),
    "payments": ("payments",),
    "notifications": (),
}
"""Collections whose documents carry an embedded outbox, per service (each service's
`outbox_collections`); notifications publishes nothing."""

SCAN_LIMIT = 10_000
"""Documents with a backlog read per collection at most (a healthy backlog is near zero)."""


@dataclass(frozen=True)
class Backlog:
    collection: str
    documents: int
    events: int
    oldest_age_seconds: float | None
    oldest_document: str | None
    truncated: bool


async def outbox_backlog(
    client: AsyncMongoClient[Document], database: str, collections: Sequence[str], *, now: datetime
) -> list[Backlog]:
    backlogs: list[Backlog] = []
    for name in collections:
        documents = events = 0
        oldest: tuple[datetime, str] | None = None
        cursor = (
            client[database][name]
            .find({PENDING_FIELD: True}, {OUTBOX_FIELD: 1})
            .limit(SCAN_LIMIT + 1)
        )
        seen = 0
        async for document in cursor:
            seen += 1
            if seen > SCAN_LIMIT:
                break
            entries = document.get(OUTBOX_FIELD) or []
            if not entries:
                continue
            documents += 1
            events += len(entries)
            for entry in entries:
                occurred_at = occurred_at_of(entry)
                if occurred_at is not None and (oldest is None or occurred_at < oldest[0]):
                    oldest = (occurred_at, str(document["_id"]))
        backlogs.append(
            Backlog(
                collection=name,
                documents=documents,
                events=events,
                oldest_age_seconds=(now - oldest[0]).total_seconds() if oldest else None,
                oldest_document=oldest[1] if oldest else None,
                truncated=seen > SCAN_LIMIT,
            )
        )
    return backlogs


def occurred_at_of(entry: Mapping[str, Any]) -> datetime | None:
    """When the stored event happened (from its envelope), if it can be read."""
    try:
        return datetime.fromisoformat(json.loads(entry["payload"])["occurred_at"])
    except (KeyError, TypeError, ValueError):
        return None

"""`Idempotency-Key` for POSTs: a retried request acts once and gets the first response."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pymongo.asynchronous.collection import AsyncCollection

from juniper_shared.batching import GroupInserts, GroupUpdates
from juniper_shared.errors import ApiError, DomainError
from juniper_shared.http import api_error

Document = dict[str, Any]

STALE_AFTER = timedelta(seconds=60)
"""A reservation older than this belongs to a request that died; it may be taken over."""

MAX_KEY_LENGTH = 200


class IdempotencyKeys:
    """Stores the first response per (seller, key) in a collection of its own."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection
        # Concurrent requests share round trips: reservations go as one bulk insert, first
        # responses as one bulk update (group commit; each request still waits for its own).
        self._reservations = GroupInserts(collection)
        self._responses = GroupUpdates(collection)

    async def run(
        self,
        request: Request,
        seller_id: str,
        action: Callable[[], Awaitable[Response]],
    ) -> Response:
        key = request.headers.get("idempotency-key")
        if key is None:
            return await action()
        if not key or len(key) > MAX_KEY_LENGTH:
            raise ApiError(422, "validation_error", "Idempotency-Key must be 1-200 characters")
        document_id = f"{seller_id}:{request.method}:{request.url.path}:{key}"
        fingerprint = hashlib.sha256(await request.body()).hexdigest()
        stored = await self._reserve(document_id, fingerprint)
        if stored is not None:
            return stored
        try:
            try:
                response = await action()
            except DomainError as domain_error:
                raise api_error(domain_error) from domain_error
        except ApiError as error:
            if error.status >= 500:
                await self._collection.delete_one({"_id": document_id})
                raise
            response = JSONResponse(
                {"error": {"code": error.code, "message": error.message}}, status_code=error.status
            )
        except BaseException:
            await self._collection.delete_one({"_id": document_id})
            raise
        if response.status_code >= 500:
            await self._collection.delete_one({"_id": document_id})
            return response
        await self._responses.update(
            {"_id": document_id},
            {
                "$set": {
                    "state": "done",
                    "status": response.status_code,
                    "body": bytes(response.body).decode(),
                    "headers": {
                        name: value
                        for name, value in response.headers.items()
                        if name.lower() in {"etag", "location", "content-type"}
                    },
                }
            },
        )
        return response

    async def _reserve(self, document_id: str, fingerprint: str) -> Response | None:
        now = datetime.now(UTC)
        if await self._reservations.insert(
            {"_id": document_id, "state": "running", "fingerprint": fingerprint, "at": now}
        ):
            return None
        existing = await self._collection.find_one({"_id": document_id})
        if existing is None:
            return await self._reserve(document_id, fingerprint)
        if existing.get("fingerprint") != fingerprint:
            raise ApiError(
                422, "idempotency_key_reused", "this Idempotency-Key was used with another body"
            )
        if existing.get("state") == "done":
            return Response(
                content=existing["body"],
                status_code=existing["status"],
                headers={**existing.get("headers", {}), "Idempotent-Replayed": "true"},
            )
        started: datetime = existing["at"]
        if now - started > STALE_AFTER:
            result = await self._collection.update_one(
                {"_id": document_id, "at": started}, {"$set": {"at": now}}
            )
            if result.modified_count == 1:
                return None
        raise ApiError(409, "request_in_progress", "a request with this Idempotency-Key is running")

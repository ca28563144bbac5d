"""`Idempotency-Key` for POSTs: a retried request acts once and gets the first response.

Changes of an existing document (an order, an invoice) cost no round trip of their own:
- **The mark.** The write that stores the change also records the request's mark (a digest of
  seller, method, path and key, and one of the body) in the document itself, in the same
  single-document write; the last MAX_MARKS marks are kept. A handler checks the marks of the
  document it loaded (`check_marks`, with the mark `run_marked` hands it) before acting: a retry finds its mark and is answered from
  the stored response instead of acting again. Two requests with one key at once race on the
  document's version guard like any two writes; the loser loads again and finds the mark.
- **The response.** The first response is stored in the `idempotency_keys` collection and
  replayed, marked `Idempotent-Replayed: true`. A response the resource can stand in for
  (`current`: every change but a split) is stored behind the answer: the responses of half
  a second go as one bulk insert, and until then a retry to this process is answered from
  memory (another process's waits for it). If the process died before storing it, a retry
  gets the resource as it is now, also marked as a replay: the same answer unless the
  resource changed again meanwhile. A response nothing can stand in for (a split's new
  order) is stored before answering.
- A request that changes nothing (an error) leaves no mark: a retry is evaluated again, and an
  error on a retry whose mark has since been dropped is answered from the stored response.

Creating a resource (`run`) reserves the key in the same collection before acting, then stores
the response.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pymongo.asynchronous.collection import AsyncCollection

from juniper_shared.batching import InsertBehind
from juniper_shared.errors import ApiError, DomainError
from juniper_shared.http import api_error
from juniper_shared.inbox import insert_new
from juniper_shared.keys import compound_id
from juniper_shared.mongo import Document
from juniper_shared.request_marks import AlreadyApplied, RequestMark

STALE_AFTER = timedelta(seconds=60)
"""A reservation older than this belongs to a request that died; it may be taken over."""

MAX_KEY_LENGTH = 200

REPLAYED_HEADERS = {"etag", "location", "content-type"}
KEY_DIGITS = 24
"""Hex digits of a key's digest (96 bits): the stored response's `_id`, unique across sellers."""
FINGERPRINT_DIGITS = 12
"""Hex digits of a body's digest: compared only between requests with the same key."""
RESPONSE_DELAY_SECONDS = 0.5
"""How long a response that `current` can stand in for may wait to be stored, with others."""
RESPONSE_WAITS = (0.02, 0.05, 0.1, 0.2, 0.4, 0.4)
"""A retry that finds its mark before the first request stored its response waits this long
(in all longer than RESPONSE_DELAY_SECONDS)."""


def _digest(text: str | bytes, digits: int) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:digits]


class IdempotencyKeys:
    """Stores the first response per (seller, method, path, key) in a collection of its own."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection
        # Responses `current` can stand in for (every change but a split) are stored behind the
        # answer, together; the rarer reservations and responses go one write each.
        self._behind = InsertBehind(collection, delay_seconds=RESPONSE_DELAY_SECONDS)

    async def flush(self) -> None:
        """Store the responses still held back (on shutdown)."""
        await self._behind.flush()

    async def run_marked(
        self,
        request: Request,
        seller_id: str,
        action: Callable[[RequestMark | None], Awaitable[Response]],
        *,
        current: Callable[[], Awaitable[Response]] | None = None,
    ) -> Response:
        """Serve a change of an existing document: `action(mark)` checks and adds the request's
        mark (None without a key) on the document it changes.

        `current` renders the resource as it is now: the answer to a retry whose first
        request's response was never stored (its process died in between)."""
        key = _key_of(request)
        if key is None:
            return await action(None)
        mark = RequestMark(
            key=_digest(compound_id(seller_id, request.method, request.url.path, key), KEY_DIGITS),
            fingerprint=_digest(await request.body(), FINGERPRINT_DIGITS),
        )
        try:
            response = await action(mark)
        except AlreadyApplied as applied:
            if not applied.same_body:
                raise _key_reused() from applied
            return await self._replay(mark, current)
        except DomainError as domain_error:
            stored = await self._stored(mark)  # a retry that came after its mark was dropped
            if stored is not None:
                return stored
            raise api_error(domain_error) from domain_error
        if 200 <= response.status_code < 300:
            first = {
                "_id": mark.key,
                "fingerprint": mark.fingerprint,
                "at": datetime.now(UTC),
                **_response_fields(response),
            }
            if current is None:
                await insert_new(self._collection, [first])
            else:
                self._behind.add(first)
        return response

    async def _replay(
        self, mark: RequestMark, current: Callable[[], Awaitable[Response]] | None
    ) -> Response:
        for wait in (0.0, *RESPONSE_WAITS):
            await asyncio.sleep(wait)
            stored = await self._stored(mark)
            if stored is not None:
                return stored
        if current is None:
            raise ApiError(
                409, "request_in_progress", "a request with this Idempotency-Key is running"
            )
        response = await current()
        response.headers["Idempotent-Replayed"] = "true"
        return response

    async def _stored(self, mark: RequestMark) -> Response | None:
        stored = self._behind.queued(mark.key) or await self._collection.find_one({"_id": mark.key})
        if stored is None:
            return None
        if stored.get("fingerprint") != mark.fingerprint:
            raise _key_reused()
        return _replayed(stored)

    async def run(
        self,
        request: Request,
        seller_id: str,
        action: Callable[[], Awaitable[Response]],
    ) -> Response:
        key = _key_of(request)
        if key is None:
            return await action()
        document_id = compound_id(seller_id, request.method, request.url.path, key)
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
        await self._collection.update_one(
            {"_id": document_id}, {"$set": {"state": "done", **_response_fields(response)}}
        )
        return response

    async def _reserve(self, document_id: str, fingerprint: str) -> Response | None:
        now = datetime.now(UTC)
        if await insert_new(
            self._collection,
            [{"_id": document_id, "state": "running", "fingerprint": fingerprint, "at": now}],
        ):
            return None
        existing = await self._collection.find_one({"_id": document_id})
        if existing is None:
            return await self._reserve(document_id, fingerprint)
        if existing.get("fingerprint") != fingerprint:
            raise _key_reused()
        if existing.get("state") == "done":
            return _replayed(existing)
        started: datetime = existing["at"]
        if now - started > STALE_AFTER:
            result = await self._collection.update_one(
                {"_id": document_id, "at": started}, {"$set": {"at": now}}
            )
            if result.modified_count == 1:
                return None
        raise ApiError(409, "request_in_progress", "a request with this Idempotency-Key is running")


def _key_of(request: Request) -> str | None:
    """The request's Idempotency-Key, if it has one; 422 if it is empty or too long."""
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ApiError(422, "validation_error", "Idempotency-Key must be 1-200 characters")
    return key


def _response_fields(response: Response) -> Document:
    return {
        "status": response.status_code,
        "body": bytes(response.body).decode(),
        "headers": {
            name: value
            for name, value in response.headers.items()
            if name.lower() in REPLAYED_HEADERS
        },
    }


def _replayed(stored: Document) -> Response:
    return Response(
        content=stored["body"],
        status_code=stored["status"],
        headers={**stored.get("headers", {}), "Idempotent-Replayed": "true"},
    )


def _key_reused() -> ApiError:
    return ApiError(
        422, "idempotency_key_reused", "this Idempotency-Key was used with another body"
    )

"""A lease in the orders database: which replica runs a deployment-wide job."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from juniper_shared.mongo import Document
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

LEASES = "leases"


class MongoLease:
    """One document `{_id: name, owner, expires_at, version}`. Every change is one write guarded
    by the version read (and, to renew, the owner): of two replicas racing for it, one wins."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        *,
        name: str,
        owner: str,
        ttl: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._leases = collection
        self._name = name
        self.owner = owner
        self._ttl = ttl
        self._clock = clock
        self._version: int | None = None
        """The version this replica last wrote, while it believes it holds the lease."""

    @property
    def held(self) -> bool:
        return self._version is not None

    async def hold(self) -> bool:
        now = self._clock()
        if self._version is not None:
            renewed = await self._write({"owner": self.owner, "version": self._version}, now)
            if renewed:
                return True
            self._version = None  # taken over after it lapsed: another replica sweeps now
        current = await self._leases.find_one({"_id": self._name})
        if current is None:
            try:
                await self._leases.insert_one(
                    {
                        "_id": self._name,
                        "owner": self.owner,
                        "expires_at": now + self._ttl,
                        "version": 1,
                    }
                )
            except DuplicateKeyError:
                return False  # another replica created it first
            self._version = 1
            return True
        if current["owner"] != self.owner and current["expires_at"] > now:
            return False
        return await self._write({"version": current["version"]}, now)

    async def release(self) -> None:
        if self._version is None:
            return
        version, self._version = self._version, None
        await self._leases.update_one(
            {"_id": self._name, "owner": self.owner, "version": version},
            {"$set": {"expires_at": self._clock()}, "$inc": {"version": 1}},
        )

    async def _write(self, guard: Document, now: datetime) -> bool:
        document = await self._leases.find_one_and_update(
            {"_id": self._name, **guard},
            {"$set": {"owner": self.owner, "expires_at": now + self._ttl}, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            return False
        self._version = int(document["version"])
        return True

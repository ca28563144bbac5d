"""The documents this process wrote or read last: the read before a guarded write, saved.

A change is a load, a decision and a write guarded by the version that was loaded. When this
process made the last write itself, the load only fetches what it already knew; `RecentDocuments`
keeps that copy, so the change costs one round trip instead of two.

The copy is a guess, never an answer: another replica may have written since. Only a guarded
write may act on it, and a write that misses (or a decision that refuses) must look again at
the database. Reads that answer a person always go to the database.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any

import bson
from bson.codec_options import CodecOptions

from juniper_shared.mongo import Document

CAPACITY = 4096
"""About forty seconds of orders at 100 orders/s; a seller's edits follow each other closely."""


class RecentDocuments:
    """The newest stored version of the last `capacity` documents, by `_id`.

    Kept BSON-encoded: each `get` decodes a copy of its own (callers change what they load), as
    a read from the database would, at the cost of a C decode rather than a deep copy.
    """

    def __init__(self, codec_options: CodecOptions[Any], *, capacity: int = CAPACITY) -> None:
        self._codec_options = codec_options
        self._capacity = capacity
        self._documents: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()

    def remember(self, document: Mapping[str, Any]) -> None:
        """Keep `document` unless a newer `version` of it is known (a document without one is
        never changed once written)."""
        key, version = document["_id"], int(document.get("version", 0))
        known = self._documents.get(key)
        if known is not None and known[0] > version:
            return
        self._documents[key] = (version, bson.encode(document, codec_options=self._codec_options))
        self._documents.move_to_end(key)
        if len(self._documents) > self._capacity:
            self._documents.popitem(last=False)

    def get(self, key: Hashable) -> Document | None:
        known = self._documents.get(key)
        if known is None:
            return None
        document: Document = bson.decode(known[1], codec_options=self._codec_options)
        return document

    async def get_or_read(
        self,
        key: Hashable,
        read: Callable[[Any], Awaitable[Document | None]],
        *,
        recent: bool = True,
    ) -> Document | None:
        """With `recent`, the copy kept of `key` if there is one; else `read(key)` from the
        database, remembered."""
        if recent and (known := self.get(key)) is not None:
            return known
        document = await read(key)
        if document is not None:
            self.remember(document)
        return document

    def forget(self, key: Hashable) -> None:
        self._documents.pop(key, None)

    def __len__(self) -> int:
        return len(self._documents)

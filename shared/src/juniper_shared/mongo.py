"""The database client, set up the same way in every service."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from juniper_shared.metrics import CommandCounter
from juniper_shared.settings import ServiceSettings

Document = dict[str, Any]
"""A stored document as PyMongo reads and writes it; every module names it by this one alias."""


def make_mongo_client(settings: ServiceSettings, *, app_name: str) -> AsyncMongoClient[Document]:
    """An AsyncMongoClient with a capped pool and round trips counted in /metrics."""
    return AsyncMongoClient(
        settings.mongodb_url,
        appname=app_name,
        maxPoolSize=settings.mongodb_max_pool_size,
        serverSelectionTimeoutMS=5_000,
        connectTimeoutMS=5_000,
        tz_aware=True,
        event_listeners=[CommandCounter()],
    )


def database(
    client: AsyncMongoClient[Document], settings: ServiceSettings, *, default: str
) -> AsyncDatabase[Document]:
    return client[settings.mongodb_database or default]


EXACT_PUSHDOWN = "junipermarket:exact-pushdown"
"""The comment by which a query vouches for itself to our FerretDB build (deploy/local/ferretdb):
the fields its filter names never hold an array or a value of another type that could equal the
filter's (a null or a missing field simply does not match), and each field its sort names holds
one type in every document. If the filter is top-level equality to a string or a bool, or `$ne`
of one, FerretDB then filters, sorts, skips, limits and counts in PostgreSQL, from a btree index
whose name ends in `_btree`, instead of reading every matching document into Go. MongoDB records
the comment and does what it always does. A query that does not qualify is answered as without
the comment."""


async def count_exact(collection: AsyncCollection[Document], query: Document) -> int:
    """The number of documents matching `query`, a filter vouched exact (see EXACT_PUSHDOWN):
    the `count` command, which our FerretDB build answers from PostgreSQL's `count(*)`."""
    reply = await collection.database.command(
        {"count": collection.name, "query": query, "comment": EXACT_PUSHDOWN}
    )
    return int(reply["n"])


async def replace_index(
    collection: AsyncCollection[Document], old_name: str, keys: list[tuple[str, int]], name: str
) -> None:
    """Create the index `name` on `keys`, then drop the index it supersedes, if there."""
    await collection.create_index(keys, name=name)
    if old_name in {index["name"] async for index in await collection.list_indexes()}:
        await collection.drop_index(old_name)

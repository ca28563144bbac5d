"""The database client, set up the same way in every service."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from juniper_shared.metrics import CommandCounter
from juniper_shared.settings import ServiceSettings

Document = dict[str, Any]


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

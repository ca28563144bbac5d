"""Fixtures for tests on real infrastructure: a real Kafka broker and a MongoDB-protocol database.

Where `KAFKA_BOOTSTRAP_SERVERS` / `MONGODB_URL` are set (make test starts Kafka and FerretDB on
PostgreSQL and sets them), they are used. Otherwise testcontainers is tried (machines with
Docker). With neither, the tests FAIL loudly: a green run always means the real thing ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pymongo import AsyncMongoClient

JWT_SECRET = "dev-only-secret"

# The secrets the services refuse to start without, as scripts/test.sh sets them, for test runs
# started without it (make test-unit).
os.environ.setdefault("BUYER_LINK_SECRET", "dev-only-buyer-link-secret")
os.environ.setdefault("CARD_VAULT_KEY", "ZGV2LW9ubHktY2FyZC12YXVsdC1rZXktMzItYnl0ZXM=")


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap: str
    mongodb_url: str
    provisioned: list[str] = field(default_factory=list, compare=False)

    def kafka(self, principal: str = "admin") -> dict[str, Any]:
        """aiokafka options for a client of this broker as `principal` (super user: admin)."""
        from juniper_testkit import kafka_options

        return kafka_options(self.kafka_bootstrap, principal)

    async def provision(self, prefix: str, *, partitions: int | None = None) -> None:
        """Create a run's topics under `prefix` and grant each principal its ACLs there, as
        the broker's super user (see juniper_ops.kafka_access for why per prefix)."""
        await asyncio.to_thread(self._provision, prefix, partitions)
        self.provisioned.append(prefix)

    def _provision(self, prefix: str, partitions: int | None) -> None:
        from juniper_ops import kafka_access

        with contextlib.closing(self._admin()) as admin:
            kafka_access.provision(admin, prefix=prefix, partitions=partitions)

    def revoke_provisioned(self) -> None:
        """Drop the ACLs of every prefix this run provisioned (its topics are tiny; they stay)."""
        from juniper_ops import kafka_access

        with contextlib.closing(self._admin()) as admin:
            for prefix in self.provisioned:
                kafka_access.revoke(admin, prefix=prefix)

    def _admin(self) -> Any:
        from juniper_ops import kafka_access
        from juniper_testkit import kafka_settings

        return kafka_access.connect(kafka_settings(self.kafka_bootstrap, "admin"))


def _from_testcontainers() -> tuple[Infra, list[Any]]:
    try:
        from testcontainers.kafka import KafkaContainer
        from testcontainers.mongodb import MongoDbContainer

        kafka = KafkaContainer("apache/kafka:4.1.0").with_kraft()
        mongo = MongoDbContainer("mongo:8")
        kafka.start()
        mongo.start()
    except Exception as error:
        pytest.fail(
            "no Kafka/MongoDB for the integration tests: set KAFKA_BOOTSTRAP_SERVERS and "
            "MONGODB_URL (make test does), or run where Docker is available "
            f"({type(error).__name__}: {error})",
            pytrace=False,
        )
    return Infra(kafka.get_bootstrap_server(), mongo.get_connection_url()), [kafka, mongo]


async def _check_reachable(infra: Infra) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**infra.kafka("admin"), request_timeout_ms=5000)
    await asyncio.wait_for(admin.start(), timeout=10)
    await admin.close()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, serverSelectionTimeoutMS=5000
    )
    await client.admin.command("ping")
    await client.close()


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    containers: list[Any] = []
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    mongodb_url = os.environ.get("MONGODB_URL")
    if bootstrap and mongodb_url:
        found = Infra(bootstrap, mongodb_url)
    else:
        found, containers = _from_testcontainers()
    try:
        asyncio.run(_check_reachable(found))
    except Exception as error:
        pytest.fail(
            f"Kafka at {found.kafka_bootstrap} or the database at {found.mongodb_url} does not "
            f"answer ({type(error).__name__}: {error}); start them with `make infra-up`",
            pytrace=False,
        )
    yield found
    if found.provisioned:
        found.revoke_provisioned()
    for container in containers:
        container.stop()


@pytest.fixture
async def mongo_client(infra: Infra) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    yield client
    await client.close()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, group and database names of one test."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def database_name(
    mongo_client: AsyncMongoClient[dict[str, Any]], unique: str
) -> AsyncIterator[str]:
    name = f"test_{unique}"
    yield name
    await mongo_client.drop_database(name)

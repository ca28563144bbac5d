"""The built images started as deploy/k8s's development overlay starts them (`make test-images`).

Every test that needs the images is deselected unless JM_IMAGE_TAG names them: scripts/images.sh sets
it, after starting the local infrastructure. The containers are removed, and the run's topics and
databases dropped, when the session ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import urllib.parse
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from juniper_ops import kafka_access
from juniper_shared.contracts.events import OrderPlaced
from juniper_shared.contracts.registry import ORDERS_PLACED, encode
from juniper_testkit import kafka_options, kafka_settings, wait_until
from pymongo import AsyncMongoClient

from .cluster import (
    Pod,
    Workload,
    environment_for,
    port_free,
    render,
    run_id,
    workloads,
)

KAFKA = "127.0.0.1:9092"
MONGODB = "mongodb://127.0.0.1:27017"
MAILPIT = "http://127.0.0.1:8025"
START_TIMEOUT = 150.0
"""Five containers importing FastAPI, FastStream and PyMongo at once, each held to its CPU limit
(half a core in development) on two busy cores."""
WAIT = 45.0
"""Bound on every wait for an asynchronous outcome (a Kafka hop, a charge, an email)."""


def as_principal(principal: str) -> dict[str, Any]:
    """aiokafka options for the test's own clients: `admin` creates and drops the run's topics
    and grants its ACLs, `checkout` places its orders (juniper_testkit's local passwords)."""
    return kafka_options(KAFKA, principal)


def provision(run: str) -> None:
    """Grant each service's principal the contract's ACLs on the run's prefixed topics and
    groups, as the topic and user operators would in a cluster."""
    with contextlib.closing(kafka_access.connect(kafka_settings(KAFKA, "admin"))) as admin:
        kafka_access.provision(admin, prefix=f"{run}.")


def revoke(run: str) -> None:
    with contextlib.closing(kafka_access.connect(kafka_settings(KAFKA, "admin"))) as admin:
        kafka_access.revoke(admin, prefix=f"{run}.")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need the built images run only under `make test-images` (JM_IMAGE_TAG set):
    elsewhere they are deselected, never reported as skipped."""
    here = os.path.dirname(__file__)
    needs_images: list[pytest.Item] = []
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.images)
            if "tag" in getattr(item, "fixturenames", ()) and not os.environ.get("JM_IMAGE_TAG"):
                needs_images.append(item)
    if needs_images:
        config.hook.pytest_deselected(items=needs_images)
        items[:] = [item for item in items if item not in needs_images]


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str


class Mailpit:
    """The development mail sink the notifications container sends to, read over its API."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def to(self, address: str) -> list[dict[str, Any]]:
        query = urllib.parse.quote(f'to:"{address}"')
        response = await self.http.get(f"{MAILPIT}/api/v1/search?query={query}&limit=200")
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    async def wait_for(self, address: str, subject: str) -> Mail:
        """The one email to `address` whose subject contains `subject` (bounded wait)."""

        async def matching() -> int:
            return len([m for m in await self.to(address) if subject in m["Subject"]])

        try:
            await wait_until(matching, equals=1, timeout=WAIT, interval=0.3)
        except AssertionError:
            subjects = [m["Subject"] for m in await self.to(address)]
            raise AssertionError(
                f"no single email to {address} about {subject!r}: {subjects}"
            ) from None
        [found] = [m for m in await self.to(address) if subject in m["Subject"]]
        body = await self.http.get(f"{MAILPIT}/api/v1/message/{found['ID']}")
        return Mail(found["Subject"], body.json()["Text"])


@dataclass
class Containers:
    """The running containers, with what tests/e2e's Seller asks of a stack."""

    run: str
    pods: dict[str, Pod]
    inbox: Mailpit
    producer: AIOKafkaProducer
    startup_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def topic_prefix(self) -> str:
        return f"{self.run}."

    def url(self, name: str) -> str:
        return self.pods["card-sandbox" if name == "sandbox" else name].workload.url

    async def place(self, order: OrderPlaced) -> None:
        """Publish a placed order on `orders.placed`, keyed by its id, as checkout does."""
        await self.producer.send_and_wait(
            self.topic_prefix + ORDERS_PLACED.name,
            encode(order),
            key=order.key().encode(),
            headers=[("type", order.type.encode())],
        )

    async def charges(self, reference: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.url("sandbox"), timeout=10) as http:
            response = await http.get("/v1/charges", params={"reference": reference})
        assert response.status_code == 200, response.text
        charges: list[dict[str, Any]] = response.json()
        return charges

    async def wait_ready(self, pod: Pod, http: httpx.AsyncClient) -> float:
        """Seconds from start until the readiness probe's path answers 200."""
        path = pod.workload.container["readinessProbe"]["httpGet"]["path"]
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not await asyncio.to_thread(pod.running):
                raise RuntimeError(f"{pod.name} exited during start-up:\n{pod.logs()}")
            try:
                if (await http.get(pod.workload.url + path, timeout=3)).status_code == 200:
                    return time.monotonic() - pod.started_at
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
        raise RuntimeError(f"{pod.name} not ready after {START_TIMEOUT:.0f} s:\n{pod.logs()}")

    def log_tails(self) -> str:
        return "\n".join(f"----- {name} -----\n{pod.logs()}" for name, pod in self.pods.items())


@pytest.fixture(scope="session")
def tag() -> str:
    return os.environ["JM_IMAGE_TAG"]


@pytest.fixture(scope="session")
def development(tag: str) -> dict[str, Workload]:
    """The development overlay's workloads, each with its built image."""
    return workloads(render("dev"), tag)


async def create_topics(resources: list[dict[str, Any]], prefix: str) -> None:
    """The overlay's KafkaTopics, as the Strimzi topic operator would create them."""
    admin = AIOKafkaAdminClient(**as_principal("admin"))
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    prefix + topic["spec"]["topicName"],
                    num_partitions=topic["spec"]["partitions"],
                    replication_factor=1,
                    topic_configs={k: str(v) for k, v in topic["spec"]["config"].items()},
                )
                for topic in resources
                if topic["kind"] == "KafkaTopic"
            ]
        )
    finally:
        await admin.close()


async def clean_up(run: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        MONGODB, serverSelectionTimeoutMS=5000
    )
    try:
        for name in await client.list_database_names():
            if name.startswith(f"{run}_"):
                await client.drop_database(name)
    finally:
        await client.close()
    admin = AIOKafkaAdminClient(**as_principal("admin"))
    await admin.start()
    try:
        ours = [name for name in await admin.list_topics() if name.startswith(f"{run}.")]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def containers(tag: str) -> AsyncIterator[Containers]:
    resources = render("dev")
    found = workloads(resources, tag)
    busy = {name: w.port for name, w in found.items() if not port_free(w.port)}
    assert not busy, f"the manifests' ports are taken on this machine (host network): {busy}"
    run = run_id()
    await create_topics(resources, f"{run}.")
    await asyncio.to_thread(provision, run)
    pods = {
        name: Pod(workload, run, environment_for(workload, run)) for name, workload in found.items()
    }
    producer = AIOKafkaProducer(**as_principal("checkout"), enable_idempotence=True)
    async with httpx.AsyncClient(timeout=15) as http:
        system = Containers(run, pods, Mailpit(http), producer)
        try:
            for pod in pods.values():
                await asyncio.to_thread(pod.create)
                await asyncio.to_thread(pod.start)
            ready = await asyncio.gather(*(system.wait_ready(p, http) for p in pods.values()))
            system.startup_seconds = dict(zip(pods, ready, strict=True))
            print("ready after (s):", {k: round(v, 1) for k, v in system.startup_seconds.items()})
            await producer.start()
            yield system
        finally:
            with contextlib.suppress(Exception):
                await producer.stop()
            for pod in pods.values():
                await asyncio.to_thread(pod.remove)
            await asyncio.to_thread(revoke, run)
            await clean_up(run)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """When a test fails, the tail of every container's log is printed with the failure."""
    report = yield
    system = getattr(item, "funcargs", {}).get("containers")
    if report.failed and call.when == "call" and isinstance(system, Containers):
        report.sections.append(("container logs", system.log_tails()))
    return report


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as client:
        yield client

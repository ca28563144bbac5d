"""The running system for the end-to-end stories: started once per session as real processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any

import httpx
import pytest

from .support import Inbox, Seller, Stack


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """When a story fails, the tail of every service's log is printed with the failure."""
    report = yield
    system = getattr(item, "funcargs", {}).get("stack")
    if report.failed and call.when == "call" and isinstance(system, Stack):
        report.sections.append(("service logs", system.log_tails()))
    return report


@pytest.fixture(scope="session")
def inbox() -> Iterator[Inbox]:
    with Inbox() as server:
        yield server


@pytest.fixture(scope="session")
async def stack(
    infra: Any, inbox: Inbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async with Stack.running(
        kafka_bootstrap=infra.kafka_bootstrap,
        mongodb_url=infra.mongodb_url,
        inbox=inbox,
        log_dir=tmp_path_factory.mktemp("e2e-logs"),
        # Orders past their deadline expire within a second, not a minute; a replica killed
        # holding the expiry lease is replaced within seconds.
        extra_env={"EXPIRY_SWEEP_SECONDS": "1", "EXPIRY_LEASE_SECONDS": "3"},
    ) as system:
        yield system


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as client:
        yield client


@pytest.fixture
def new_seller(stack: Stack, http: httpx.AsyncClient) -> Callable[[], Seller]:
    """A seller of their own for each story, so stories share nothing but the system."""
    return lambda: Seller(stack, http)


@pytest.fixture
def seller(new_seller: Callable[[], Seller]) -> Seller:
    return new_seller()

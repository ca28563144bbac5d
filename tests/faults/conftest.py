"""The fault suite's system: a Kafka broker of its own (so restarting it disturbs no one else's
tests), the four services and the sandbox as processes, an SMTP inbox.

The suite lives in `fault_suite.py`, a name pytest does not collect by itself: it runs with
`make test-faults` only, never as part of `make test`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..support.stack import Inbox, PrivateKafka, Stack


@pytest.fixture(scope="module")
async def kafka() -> AsyncIterator[PrivateKafka]:
    state_dir = Path(tempfile.mkdtemp(prefix="jm-faults-kafka-"))
    broker = PrivateKafka(state_dir)
    try:
        await broker.up()
        yield broker
    finally:
        try:
            await broker.down()
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    with Inbox() as server:
        yield server


@pytest.fixture(scope="module")
async def stack(
    infra: Any, kafka: PrivateKafka, inbox: Inbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async with Stack.running(
        kafka_bootstrap=kafka.bootstrap,
        mongodb_url=infra.mongodb_url,
        inbox=inbox,
        log_dir=tmp_path_factory.mktemp("fault-logs"),
        label="faults",
        extra_env={"LOG_LEVEL": "WARNING"},
    ) as system:
        yield system

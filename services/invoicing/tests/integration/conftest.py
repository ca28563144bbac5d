"""Fixtures for invoicing on real Kafka and FerretDB (helpers live in `support`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from invoicing.bootstrap import build_app
from juniper_testkit import free_port, serving

from .support import Invoicing, invoicing_settings


@asynccontextmanager
async def running_invoicing(
    infra: Any, database_name: str, unique: str
) -> AsyncIterator[Invoicing]:
    """One invoicing process (a replica: a second one shares the database and topics)."""
    port = free_port()
    settings = invoicing_settings(infra, database_name, unique, port)
    await infra.provision(settings.kafka_topic_prefix)
    async with (
        serving(build_app(settings), port=port) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
    ):
        yield Invoicing(base_url, settings.kafka_topic_prefix, infra.kafka_bootstrap, http)


@pytest.fixture
async def service(infra: Any, database_name: str, unique: str) -> AsyncIterator[Invoicing]:
    async with running_invoicing(infra, database_name, unique) as invoicing:
        yield invoicing

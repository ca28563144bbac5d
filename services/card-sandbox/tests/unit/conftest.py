"""The sandbox in process, behind an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from card_sandbox import Sandbox, create_sandbox_app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_sandbox_app(Sandbox(slow_seconds=0.3))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client

"""Work that lost its races for too long is answered 503 with its code and a Retry-After, never a
bare 500: the caller may send the same request again."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from juniper_shared.errors import RetryLater
from juniper_shared.http import create_app


class CounterBusy(RetryLater):
    code = "numbering_busy"


@contextlib.asynccontextmanager
async def nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


async def test_a_busy_resource_is_answered_503_with_its_code_and_retry_after() -> None:
    app = create_app(
        title="t",
        version="1",
        jwt_secret="dev-only-secret",
        max_token_ttl_seconds=3600,
        lifespan=nothing,
        readiness=[],
    )

    @app.post("/confirm")
    async def confirm() -> None:
        raise CounterBusy("numbering for seller s-1 is busy; try again")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/confirm")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "error": {
            "code": "numbering_busy",
            "message": "numbering for seller s-1 is busy; try again",
        }
    }

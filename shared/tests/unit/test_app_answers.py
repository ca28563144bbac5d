"""What the app factory answers besides the routes: nosniff on every response, errors included;
a CSP on HTML only; work that lost its races for too long answered 503 with its code and a
Retry-After, never a bare 500, so the caller may send the same request again."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from juniper_shared.asgi import HTML_POLICY
from juniper_shared.errors import RetryLater
from juniper_shared.http import create_app


class CounterBusy(RetryLater):
    code = "numbering_busy"


@contextlib.asynccontextmanager
async def nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


def app() -> FastAPI:
    built = create_app(
        title="t",
        version="1",
        jwt_secret="dev-only-secret",
        max_token_ttl_seconds=3600,
        lifespan=nothing,
        readiness=[],
    )

    @built.get("/page", response_class=HTMLResponse)
    async def page() -> str:
        return "<p>hi</p>"

    @built.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @built.post("/confirm")
    async def confirm() -> None:
        raise CounterBusy("numbering for seller s-1 is busy; try again")

    return built


async def test_every_response_says_nosniff_and_html_gets_a_policy() -> None:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        page = await client.get("/page")
        assert page.headers["content-security-policy"] == HTML_POLICY
        for path in ("/page", "/healthz", "/missing", "/boom", "/openapi.json"):
            response = await client.get(path)
            assert response.headers["x-content-type-options"] == "nosniff", path
        assert "content-security-policy" not in (await client.get("/healthz")).headers
        assert (await client.get("/boom")).status_code == 500


async def test_a_busy_resource_is_answered_503_with_its_code_and_retry_after() -> None:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
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

"""The seller portal as a real client behaves when a service restarts under it.

Every call is retried, bounded, while the service cannot answer (connection refused or reset,
a 5xx, or `409 request_in_progress`: a request with the same `Idempotency-Key` is still being
served, or created a resource in a process that died mid-way and whose reservation has not
expired yet). Writes carry an `Idempotency-Key`, the same on every retry of one logical request,
so a retry never acts twice.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from juniper_testkit import bearer

from .stack import JWT_SECRET, Stack

CALL_DEADLINE = 150.0
"""How long one logical request is retried: a restart plus an expired 60 s reservation."""

IN_PROGRESS = "request_in_progress"


class ServiceUnavailable(Exception):
    """A request still failed after retrying for CALL_DEADLINE seconds."""


@dataclass
class RetryStats:
    retries: int = 0
    """Calls sent again because the service could not answer."""
    in_progress: int = 0
    """Retries answered 409 request_in_progress (a reservation left by a killed process)."""


def _retryable(response: httpx.Response) -> bool:
    if response.status_code >= 500:
        return True
    if response.status_code == 409:
        try:
            return bool(response.json()["error"]["code"] == IN_PROGRESS)
        except (ValueError, KeyError, TypeError):
            return False
    return False


def error_code(response: httpx.Response) -> str | None:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return str(code)


class Portal:
    """One seller's session; `call` is any request the portal makes, retried as described."""

    def __init__(
        self,
        stack: Stack,
        http: httpx.AsyncClient,
        seller_id: str,
        *,
        stats: RetryStats | None = None,
        deadline: float = CALL_DEADLINE,
    ) -> None:
        self.stack = stack
        self.http = http
        self.seller_id = seller_id
        self.headers = bearer(seller_id, JWT_SECRET)
        self.stats = stats if stats is not None else RetryStats()
        self.deadline = deadline

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> httpx.Response:
        """The first answer that is not "the service cannot answer now"."""
        headers = dict(self.headers)
        if method in ("POST", "PATCH"):
            headers["Idempotency-Key"] = key or uuid.uuid4().hex
        give_up = time.monotonic() + self.deadline
        pause = 0.2
        while True:
            try:
                response = await self.http.request(
                    method,
                    self.stack.url(service) + path,
                    json=dict(json) if json is not None else None,
                    params=params,
                    headers=headers,
                )
                if not _retryable(response):
                    return response
                if response.status_code == 409:
                    self.stats.in_progress += 1
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.TransportError as error:
                last = f"{type(error).__name__}: {error}"
            if time.monotonic() > give_up:
                raise ServiceUnavailable(f"{method} {service}{path}: {last}")
            self.stats.retries += 1
            await asyncio.sleep(pause)
            pause = min(2.0, pause * 1.5)

    async def ok(self, service: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.call(service, method, path, **kwargs)
        assert response.status_code in (200, 201, 202), f"{method} {path}: {response.text}"
        body: dict[str, Any] = response.json()
        return body

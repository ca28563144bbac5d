"""One httpx client per API, and the contract's error body as an exception the screens show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from juniper_shared.logs import correlation_id

Json = dict[str, Any]


class ApiProblem(Exception):
    """An API said no (a contract error body) or did not answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: httpx.Headers


class Api:
    """One of the four services, called with the signed-in seller's token."""

    def __init__(self, name: str, client: httpx.AsyncClient) -> None:
        self.name = name
        self.client = client

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str,
        json: Json | None = None,
        params: dict[str, str | int] | None = None,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        accept: str = "application/json",
    ) -> Answer:
        headers = {"Authorization": f"Bearer {token}", "Accept": accept}
        if request_id := correlation_id.get():
            headers["X-Correlation-Id"] = request_id
        if if_match is not None:
            headers["If-Match"] = f'"{if_match}"'
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = await self.client.request(
                method, path, json=json, params=params, headers=headers
            )
        except httpx.TimeoutException as error:
            raise ApiProblem(
                504, "unavailable", f"The {self.name} service did not answer in time; try again."
            ) from error
        except httpx.TransportError as error:
            raise ApiProblem(
                503, "unavailable", f"The {self.name} service cannot be reached; try again."
            ) from error
        if response.status_code >= 400:
            raise _problem(self.name, response)
        if not response.content:
            body: Any = None
        elif response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
        else:
            body = response.content
        return Answer(response.status_code, body, response.headers)

    async def get(
        self, path: str, *, token: str, params: dict[str, str | int] | None = None
    ) -> Any:
        return (await self.call("GET", path, token=token, params=params)).body

    async def close(self) -> None:
        await self.client.aclose()


def _problem(service: str, response: httpx.Response) -> ApiProblem:
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code = "unexpected_answer"
        message = f"The {service} service answered {response.status_code}."
    return ApiProblem(response.status_code, code, message)


def create_client(
    base_url: str, timeout: float, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """`transport` replaces the network (tests answer with httpx.MockTransport)."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        transport=transport,
    )

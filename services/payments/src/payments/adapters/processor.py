"""The card processor over HTTP: one Idempotency-Key per attempt, transient faults retried.

Timeouts, connection errors, 429 and 5xx are retried with exponential backoff and jitter,
bounded by a number of calls and a total time; a decline (402) is an answer, never retried.
Every retry carries the same key, so a charge the processor made before the fault is
returned, not made again. Refunds (`POST /v1/refunds`) go the same way, with their own key.
The card token is sent in the body and never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from payments.application.ports import (
    ChargeRequest,
    ChargeResult,
    ProcessorRejected,
    ProcessorUnavailable,
    RefundRequest,
    RefundResult,
)
from payments.metrics import PROCESSOR_RETRIES

log = logging.getLogger(__name__)

T = TypeVar("T")


class TransientResponse(Exception):
    """The processor answered 429 or 5xx: worth another try with the same key."""

    def __init__(self, status: int) -> None:
        super().__init__(f"processor answered {status}")
        self.status = status


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TransientResponse | httpx.TimeoutException | httpx.TransportError)


def _cause(error: BaseException | None) -> str:
    if isinstance(error, TransientResponse):
        return str(error.status)
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    return "connection"


class HttpCardProcessor:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float = 10.0,
        retry_attempts: int = 5,
        retry_max_seconds: float = 20.0,
        backoff_seconds: float = 0.5,
        backoff_max_seconds: float = 8.0,
        api_key: SecretStr | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_seconds),
            headers=headers,
            transport=transport,
        )
        self._attempts = retry_attempts
        self._max_seconds = retry_max_seconds
        self._wait = wait_random_exponential(multiplier=backoff_seconds, max=backoff_max_seconds)

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        return await self._retried(lambda: self._post(request))

    async def refund(self, request: RefundRequest) -> RefundResult:
        return await self._retried(lambda: self._post_refund(request))

    async def _retried(self, call: Callable[[], Awaitable[T]]) -> T:
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=self._wait,
            stop=stop_after_attempt(self._attempts) | stop_after_delay(self._max_seconds),
            before_sleep=_count_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await call()
        except (TransientResponse, httpx.TimeoutException, httpx.TransportError) as error:
            raise ProcessorUnavailable(
                f"{_cause(error)} after {retrying.statistics.get('attempt_number', 1)} calls"
            ) from None
        raise AssertionError("unreachable")

    async def _post(self, request: ChargeRequest) -> ChargeResult:
        body: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency,
            "card_token": request.card_token,
            "reference": request.reference,
            "description": request.description,
        }
        response = await self._client.post(
            "/v1/charges", json=body, headers={"Idempotency-Key": request.idempotency_key}
        )
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientResponse(response.status_code)
        answer = _json(response)
        if response.status_code in (200, 201) and answer.get("status") == "succeeded":
            return ChargeResult(approved=True, processor_ref=str(answer["charge_id"]))
        if response.status_code == 402:
            error = answer.get("error") or {}
            return ChargeResult(
                approved=False,
                processor_ref=_text(answer.get("charge_id")),
                decline_code=_text(error.get("code")) or "card_declined",
            )
        error = answer.get("error") or {}
        raise ProcessorRejected(f"{response.status_code} {_text(error.get('code')) or 'unknown'}")

    async def _post_refund(self, request: RefundRequest) -> RefundResult:
        response = await self._client.post(
            "/v1/refunds",
            json={"charge_id": request.charge_ref, "amount": request.amount},
            headers={"Idempotency-Key": request.idempotency_key},
        )
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientResponse(response.status_code)
        answer = _json(response)
        if response.status_code in (200, 201) and answer.get("status") == "succeeded":
            return RefundResult(refund_ref=str(answer["refund_id"]))
        error = answer.get("error") or {}
        raise ProcessorRejected(f"{response.status_code} {_text(error.get('code')) or 'unknown'}")

    async def aclose(self) -> None:
        await self._client.aclose()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    PROCESSOR_RETRIES.labels(_cause(error)).inc()

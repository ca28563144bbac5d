"""The processor adapter's retry policy, on a fake transport: what is retried and how far."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from payments.adapters.processor import HttpCardProcessor
from payments.application.ports import (
    ChargeRequest,
    ProcessorRejected,
    ProcessorUnavailable,
)

REQUEST = ChargeRequest(
    amount="66.00",
    currency="USD",
    card_token="tok_secret_visa",
    reference="inv-1",
    idempotency_key="inv-1:1",
)
APPROVED = httpx.Response(
    201,
    json={
        "charge_id": "ch_1",
        "reference": "inv-1",
        "amount": "66.00",
        "currency": "USD",
        "status": "succeeded",
    },
)


class Script:
    """Answers calls in order (a Response, or an exception to raise); records every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


def processor(script: Script, *, attempts: int = 5, max_seconds: float = 20.0) -> HttpCardProcessor:
    return HttpCardProcessor(
        "http://processor.test",
        retry_attempts=attempts,
        retry_max_seconds=max_seconds,
        backoff_seconds=0,  # no waiting in unit tests
        transport=httpx.MockTransport(script),
    )


def unavailable(status: int) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": "busy", "message": "try later"}})


TRANSIENT: list[Callable[[], httpx.Response | Exception]] = [
    lambda: unavailable(503),
    lambda: unavailable(500),
    lambda: unavailable(502),
    lambda: unavailable(429),
    lambda: httpx.ReadTimeout("slow"),
    lambda: httpx.ConnectTimeout("slow"),
    lambda: httpx.ConnectError("refused"),
    lambda: httpx.RemoteProtocolError("hung up"),
]


@pytest.mark.parametrize("fault", TRANSIENT)
async def test_transient_faults_are_retried_with_the_same_idempotency_key(
    fault: Callable[[], httpx.Response | Exception],
) -> None:
    script = Script(fault(), fault(), APPROVED)
    result = await processor(script).charge(REQUEST)
    assert (result.approved, result.processor_ref) == (True, "ch_1")
    assert len(script.requests) == 3
    assert {r.headers["Idempotency-Key"] for r in script.requests} == {"inv-1:1"}


@pytest.mark.parametrize("code", ["card_declined", "insufficient_funds", "invalid_card"])
async def test_a_decline_is_an_answer_and_is_never_retried(code: str) -> None:
    script = Script(
        httpx.Response(
            402,
            json={
                "error": {"code": code, "message": "declined"},
                "charge_id": "ch_9",
                "status": "failed",
            },
        )
    )
    result = await processor(script).charge(REQUEST)
    assert (result.approved, result.decline_code, result.processor_ref) == (False, code, "ch_9")
    assert len(script.requests) == 1


async def test_retries_stop_after_the_configured_number_of_calls() -> None:
    script = Script(unavailable(503))
    with pytest.raises(ProcessorUnavailable, match="after 4 calls"):
        await processor(script, attempts=4).charge(REQUEST)
    assert len(script.requests) == 4


async def test_retries_stop_when_the_time_budget_is_spent() -> None:
    script = Script(httpx.ConnectError("refused"))
    with pytest.raises(ProcessorUnavailable):
        await processor(script, attempts=10, max_seconds=0).charge(REQUEST)
    assert len(script.requests) == 1


async def test_a_refused_request_is_not_retried() -> None:
    script = Script(
        httpx.Response(422, json={"error": {"code": "idempotency_key_reused", "message": "x"}})
    )
    with pytest.raises(ProcessorRejected, match="422 idempotency_key_reused"):
        await processor(script).charge(REQUEST)
    assert len(script.requests) == 1


async def test_the_card_token_travels_in_the_body_and_never_in_errors_or_reprs() -> None:
    script = Script(unavailable(503))
    with pytest.raises(ProcessorUnavailable) as raised:
        await processor(script, attempts=2).charge(REQUEST)
    assert b"tok_secret_visa" in script.requests[0].content
    assert "tok_secret_visa" not in str(raised.value)
    assert "tok_secret_visa" not in repr(REQUEST)

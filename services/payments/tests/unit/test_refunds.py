"""Refunds through the processor adapter: transient faults retried with one key."""

from __future__ import annotations

import httpx
import pytest
from payments.application.ports import ProcessorRejected, ProcessorUnavailable, RefundRequest

from .test_processor_retries import Script, processor, unavailable

REQUEST = RefundRequest(charge_ref="ch_1", amount="66.00", idempotency_key="inv-1:1:refund")
REFUNDED = httpx.Response(
    201, json={"refund_id": "re_1", "charge_id": "ch_1", "amount": "66.00", "status": "succeeded"}
)


async def test_the_adapter_retries_transient_faults_with_the_same_refund_key() -> None:
    script = Script(unavailable(503), httpx.ReadTimeout("slow"), REFUNDED)
    result = await processor(script).refund(REQUEST)

    assert result.refund_ref == "re_1"
    assert [r.headers["Idempotency-Key"] for r in script.requests] == ["inv-1:1:refund"] * 3
    assert all(r.url.path == "/v1/refunds" for r in script.requests)


async def test_the_adapter_gives_up_or_reports_a_refusal() -> None:
    with pytest.raises(ProcessorUnavailable):
        await processor(Script(unavailable(503)), attempts=2).refund(REQUEST)
    refused = httpx.Response(409, json={"error": {"code": "charge_not_refundable"}})
    script = Script(refused)
    with pytest.raises(ProcessorRejected, match="charge_not_refundable"):
        await processor(script).refund(REQUEST)
    assert len(script.requests) == 1

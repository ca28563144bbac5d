"""Refunds at the sandbox: its `POST /v1/refunds` contract, one refund per charge and key."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from .test_sandbox_processor import charge, charges


async def refund(
    client: httpx.AsyncClient, charge_id: str, *, key: str, amount: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"charge_id": charge_id}
    if amount is not None:
        body["amount"] = amount
    return await client.post("/v1/refunds", json=body, headers={"Idempotency-Key": key})


async def test_a_succeeded_charge_is_refunded_once_and_listed_as_refunded(
    client: httpx.AsyncClient,
) -> None:
    made = (await charge(client, "tok_visa")).json()
    first = await refund(client, made["charge_id"], key="inv-1:1:refund")
    assert first.status_code == 201
    answer = first.json()
    assert (answer["charge_id"], answer["amount"], answer["status"]) == (
        made["charge_id"],
        "66.00",
        "succeeded",
    )
    assert answer["refund_id"].startswith("re_")

    replay = await refund(client, made["charge_id"], key="inv-1:1:refund")
    assert (replay.status_code, replay.json()) == (201, answer)
    assert replay.headers["Idempotent-Replayed"] == "true"

    other_key = await refund(client, made["charge_id"], key="someone-else")
    assert (other_key.status_code, other_key.json()["error"]["code"]) == (
        409,
        "charge_already_refunded",
    )
    listed = await charges(client)
    assert [(c["status"], c["refunded_amount"]) for c in listed] == [("refunded", "66.00")]


async def test_only_a_succeeded_charge_can_be_refunded(client: httpx.AsyncClient) -> None:
    declined = (await charge(client, "tok_declined")).json()
    response = await refund(client, declined["charge_id"], key=uuid.uuid4().hex)
    assert (response.status_code, response.json()["error"]["code"]) == (
        409,
        "charge_not_refundable",
    )
    unknown = await refund(client, "ch_nope", key=uuid.uuid4().hex)
    assert unknown.status_code == 404
    made = (await charge(client, "tok_visa", reference="inv-2")).json()
    too_much = await refund(client, made["charge_id"], key=uuid.uuid4().hex, amount="66.01")
    assert too_much.status_code == 422
    missing_key = await client.post("/v1/refunds", json={"charge_id": made["charge_id"]})
    assert missing_key.status_code == 400
    assert (await charges(client, "inv-2"))[0]["status"] == "succeeded"

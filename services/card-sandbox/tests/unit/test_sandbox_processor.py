"""The sandbox processor's contract, in process: test tokens, replay, and key reuse."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from juniper_testkit import wait_until


def body(token: str, reference: str = "inv-1", amount: str = "66.00") -> dict[str, Any]:
    return {"amount": amount, "currency": "USD", "card_token": token, "reference": reference}


async def charge(
    client: httpx.AsyncClient, token: str, *, key: str | None = None, reference: str = "inv-1"
) -> httpx.Response:
    return await client.post(
        "/v1/charges",
        json=body(token, reference),
        headers={"Idempotency-Key": key or uuid.uuid4().hex},
    )


async def charges(client: httpx.AsyncClient, reference: str = "inv-1") -> list[dict[str, Any]]:
    response = await client.get("/v1/charges", params={"reference": reference})
    assert response.status_code == 200
    listed: list[dict[str, Any]] = response.json()
    return listed


async def test_tok_visa_is_charged_and_listed_by_reference(client: httpx.AsyncClient) -> None:
    response = await charge(client, "tok_visa")
    assert response.status_code == 201
    made = response.json()
    assert made["status"] == "succeeded"
    assert (made["reference"], made["amount"], made["currency"]) == ("inv-1", "66.00", "USD")
    assert await charges(client) == [made]
    assert await charges(client, "inv-other") == []


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("tok_declined", "card_declined"),
        ("tok_insufficient_funds", "insufficient_funds"),
        ("tok_made_up", "invalid_card"),
    ],
)
async def test_declines_answer_402_with_their_code(
    client: httpx.AsyncClient, token: str, code: str
) -> None:
    response = await charge(client, token)
    assert response.status_code == 402
    answer = response.json()
    assert answer["error"]["code"] == code
    assert answer["status"] == "failed"
    assert token not in response.text
    assert [c["status"] for c in await charges(client)] == ["failed"]


async def test_a_replay_returns_the_first_answer_and_charges_nothing_more(
    client: httpx.AsyncClient,
) -> None:
    first = await charge(client, "tok_visa", key="k1")
    again = await charge(client, "tok_visa", key="k1")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(await charges(client)) == 1


async def test_the_same_key_with_another_body_is_refused(client: httpx.AsyncClient) -> None:
    await charge(client, "tok_visa", key="k1")
    response = await client.post(
        "/v1/charges",
        json=body("tok_visa", amount="1.00"),
        headers={"Idempotency-Key": "k1"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert len(await charges(client)) == 1


async def test_a_charge_without_idempotency_key_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/charges", json=body("tok_visa"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_required"
    assert await charges(client) == []


async def test_an_invalid_body_is_refused_without_echoing_the_token(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v1/charges",
        json={**body("tok_visa"), "amount": 12.5, "card_token": "tok_secret"},
        headers={"Idempotency-Key": "k"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert "tok_secret" not in response.text


async def test_tok_transient_fails_twice_per_key_then_approves(
    client: httpx.AsyncClient,
) -> None:
    statuses = [(await charge(client, "tok_transient", key="k")).status_code for _ in range(4)]
    assert statuses == [503, 503, 201, 201]
    assert [(await charge(client, "tok_transient", key="k2")).status_code] == [503]
    assert [c["status"] for c in await charges(client)] == ["succeeded"]


async def test_tok_decline_once_declines_the_first_attempt_of_an_invoice_only(
    client: httpx.AsyncClient,
) -> None:
    assert (await charge(client, "tok_decline_once", key="inv-1:1")).status_code == 402
    assert (await charge(client, "tok_decline_once", key="inv-1:1")).status_code == 402
    assert (await charge(client, "tok_decline_once", key="inv-1:2")).status_code == 201
    other = await charge(client, "tok_decline_once", key="inv-2:1", reference="inv-2")
    assert other.status_code == 402


async def test_a_replay_of_a_slow_charge_in_flight_waits_for_the_first_answer(
    client: httpx.AsyncClient,
) -> None:
    first, replay = await asyncio.gather(
        charge(client, "tok_slow", key="slow-1"), charge(client, "tok_slow", key="slow-1")
    )
    assert (first.status_code, replay.status_code) == (201, 201)
    assert first.json() == replay.json()
    listed = await charges(client)
    assert [c["status"] for c in listed] == ["succeeded"]


async def test_a_slow_charge_is_made_when_the_request_arrives(client: httpx.AsyncClient) -> None:
    in_flight = asyncio.create_task(charge(client, "tok_slow", key="slow-2"))

    async def statuses() -> list[str]:
        return [c["status"] for c in await charges(client)]

    await wait_until(statuses, equals=["processing"], timeout=5, interval=0.01)
    assert (await in_flight).status_code == 201
    assert [c["status"] for c in await charges(client)] == ["succeeded"]

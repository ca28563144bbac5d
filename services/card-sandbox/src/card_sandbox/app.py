"""The sandbox processor's behaviour, in memory.

Tokens (CONTRACT.md): `tok_visa` approves; `tok_declined` and `tok_insufficient_funds` decline;
`tok_transient` answers 503 to the first two calls of each Idempotency-Key, then approves;
`tok_decline_once` declines the first charge for a reference and approves later ones;
`tok_slow` approves after a delay (the charge is made when the request arrives); unknown
tokens decline with `invalid_card`. One more for tests: `tok_unavailable` always answers 503.

Refunds (`POST /v1/refunds` `{charge_id, amount?}`, with an Idempotency-Key) give back a
succeeded charge once: the charge then lists as `refunded` with its `refunded_amount`; a charge
that did not succeed, or was refunded under another key, is refused (409).

Like Stripe, a request replayed with the same Idempotency-Key gets the first response and
charges nothing more, even while the first is still running; the same key with another
body is refused (422 `idempotency_key_reused`). Bodies are never echoed in errors.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from juniper_shared.asgi import SecurityHeaders
from juniper_shared.contracts.money import Amount
from pydantic import BaseModel, StringConstraints, ValidationError

Token = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Reference = Annotated[str, StringConstraints(min_length=1, max_length=200)]

APPROVE = "approve"
TEST_CARDS: dict[str, str] = {
    "tok_visa": APPROVE,
    "tok_declined": "card_declined",
    "tok_insufficient_funds": "insufficient_funds",
    "tok_transient": "transient",
    "tok_decline_once": "decline_once",
    "tok_slow": "slow",
    "tok_unavailable": "unavailable",
}
"""How each test token behaves; any other token declines with `invalid_card`."""
DECLINES = {
    "card_declined": "The card was declined.",
    "insufficient_funds": "The card has insufficient funds.",
    "invalid_card": "The card is not recognised.",
}
TRANSIENT_FAILURES = 2
"""`tok_transient` answers 503 this many times per Idempotency-Key."""


class ChargeBody(BaseModel):
    amount: Amount
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    card_token: Token
    reference: Reference
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None


class RefundBody(BaseModel):
    charge_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    amount: Amount | None = None
    """Defaults to the whole charge."""


@dataclass
class Charge:
    charge_id: str
    reference: str
    amount: str
    currency: str
    status: str
    refunded_amount: str | None = None


Answer = tuple[int, dict[str, Any]]


@dataclass
class _Key:
    fingerprint: str
    answer: asyncio.Task[Answer]


@dataclass
class Sandbox:
    """In-memory processor state: charges made, answers by Idempotency-Key."""

    slow_seconds: float = 5.0
    charges: dict[str, Charge] = field(default_factory=dict)
    _keys: dict[str, _Key] = field(default_factory=dict)
    _transient_calls: dict[str, int] = field(default_factory=dict)
    _declined_once: set[str] = field(default_factory=set)
    _refunds: dict[str, tuple[str, Answer]] = field(default_factory=dict)
    """Idempotency-Key -> (body fingerprint, first answer)."""
    _refunded_by: dict[str, str] = field(default_factory=dict)
    """charge id -> the Idempotency-Key that refunded it."""

    def refund(self, key: str, body: RefundBody) -> tuple[Answer, bool]:
        """Refund a succeeded charge once; the answer, and whether it is a replay."""
        fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        known = self._refunds.get(key)
        if known is not None:
            if known[0] != fingerprint:
                return _error(422, "idempotency_key_reused", "key used with another body"), False
            return known[1], True
        charge = self.charges.get(body.charge_id)
        if charge is None:
            return _error(404, "charge_not_found", "No such charge."), False
        if body.charge_id in self._refunded_by:
            return _error(409, "charge_already_refunded", "The charge was refunded."), False
        if charge.status != "succeeded":
            return _error(409, "charge_not_refundable", "Only a succeeded charge."), False
        amount = body.amount if body.amount is not None else Decimal(charge.amount)
        if amount <= 0 or amount > Decimal(charge.amount):
            return _error(422, "invalid_amount", "At most the charged amount."), False
        charge.status = "refunded"
        charge.refunded_amount = str(amount)
        answer: Answer = (
            201,
            {
                "refund_id": f"re_{uuid.uuid4().hex[:24]}",
                "charge_id": charge.charge_id,
                "amount": str(amount),
                "status": "succeeded",
            },
        )
        self._refunds[key] = (fingerprint, answer)
        self._refunded_by[body.charge_id] = key
        return answer, False

    async def charge(self, key: str, body: ChargeBody) -> tuple[Answer, bool]:
        """The answer for this key, and whether it is a replay of an earlier one."""
        fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        known = self._keys.get(key)
        if known is not None:
            if known.fingerprint != fingerprint:
                return _error(422, "idempotency_key_reused", "key used with another body"), False
            # Still running (tok_slow) or done: either way the first answer, no second charge.
            return await asyncio.shield(known.answer), True
        behaviour = TEST_CARDS.get(body.card_token, "invalid_card")
        if behaviour == "unavailable":
            return _error(503, "processor_unavailable", "Try again later."), False
        if behaviour == "transient":
            calls = self._transient_calls.get(key, 0) + 1
            self._transient_calls[key] = calls
            if calls <= TRANSIENT_FAILURES:
                return _error(503, "processor_unavailable", "Try again later."), False
        # Registered before the first await, so a concurrent replay finds it.
        task = asyncio.create_task(self._process(body, behaviour))
        self._keys[key] = _Key(fingerprint, task)
        return await asyncio.shield(task), False

    async def _process(self, body: ChargeBody, behaviour: str) -> Answer:
        charge = Charge(
            charge_id=f"ch_{uuid.uuid4().hex[:24]}",
            reference=body.reference,
            amount=str(body.amount),
            currency=body.currency,
            status="processing",
        )
        self.charges[charge.charge_id] = charge
        decision = self._decide(body.reference, behaviour)
        if behaviour == "slow":
            await asyncio.sleep(self.slow_seconds)
        if decision == APPROVE:
            charge.status = "succeeded"
            return 201, asdict(charge)
        charge.status = "failed"
        return 402, {
            "error": {"code": decision, "message": DECLINES[decision]},
            "charge_id": charge.charge_id,
            "status": "failed",
        }

    def _decide(self, reference: str, behaviour: str) -> str:
        if behaviour in (APPROVE, "transient", "slow"):
            return APPROVE
        if behaviour == "decline_once":
            if reference in self._declined_once:
                return APPROVE
            self._declined_once.add(reference)
            return "card_declined"
        return behaviour

    def listed(self, reference: str | None) -> list[dict[str, Any]]:
        return [
            asdict(charge)
            for charge in self.charges.values()
            if reference is None or charge.reference == reference
        ]


def _error(status: int, code: str, message: str) -> Answer:
    return status, {"error": {"code": code, "message": message}}


def _validation_message(error: ValidationError | RequestValidationError) -> str:
    # Locations and messages only: the input (a card token) is never echoed.
    problems = [
        f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"
        for issue in error.errors()[:5]
    ]
    return "; ".join(problems) or "invalid request"


def create_sandbox_app(sandbox: Sandbox | None = None) -> FastAPI:
    state = sandbox or Sandbox()
    app = FastAPI(title="JuniperMarket sandbox card processor", version="1.0.0")
    app.add_middleware(SecurityHeaders)
    app.state.sandbox = state

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        status, body = _error(422, "validation_error", _validation_message(error))
        return JSONResponse(body, status_code=status)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/charges", status_code=201)
    async def create_charge(request: Request) -> JSONResponse:
        key = request.headers.get("idempotency-key", "")
        if not key or len(key) > 255:
            status, body = _error(
                400, "idempotency_key_required", "send an Idempotency-Key header (1-255 chars)"
            )
            return JSONResponse(body, status_code=status)
        try:
            charge = ChargeBody.model_validate_json(await request.body())
        except ValidationError as error:
            status, body = _error(422, "validation_error", _validation_message(error))
            return JSONResponse(body, status_code=status)
        (status, body), replayed = await state.charge(key, charge)
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        if status == 503:
            headers["Retry-After"] = "1"
        return JSONResponse(body, status_code=status, headers=headers)

    @app.post("/v1/refunds", status_code=201)
    async def create_refund(request: Request) -> JSONResponse:
        key = request.headers.get("idempotency-key", "")
        if not key or len(key) > 255:
            status, body = _error(
                400, "idempotency_key_required", "send an Idempotency-Key header (1-255 chars)"
            )
            return JSONResponse(body, status_code=status)
        try:
            refund = RefundBody.model_validate_json(await request.body())
        except ValidationError as error:
            status, body = _error(422, "validation_error", _validation_message(error))
            return JSONResponse(body, status_code=status)
        (status, body), replayed = state.refund(key, refund)
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        return JSONResponse(body, status_code=status, headers=headers)

    @app.get("/v1/charges")
    async def list_charges(
        reference: Annotated[str | None, Query(max_length=200)] = None,
    ) -> list[dict[str, Any]]:
        return state.listed(reference)

    return app

"""The payments API (`/v1`): an invoice's payment attempts and the seller's retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from juniper_shared.auth import SellerId
from juniper_shared.contracts.money import from_minor
from juniper_shared.http import ERROR_RESPONSES
from juniper_shared.idempotency import IdempotencyKeys

from payments.application.handlers import PaymentsHandlers
from payments.entrypoints.schemas import PaymentView, RetryAccepted, attempt_view, payment_view


def build_router(handlers: PaymentsHandlers, idempotency: IdempotencyKeys) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES, tags=["payments"])

    @router.get(
        "/payments", response_model=PaymentView, summary="An invoice's payment and its attempts"
    )
    async def get_payment(
        seller_id: SellerId,
        invoice_id: Annotated[str, Query(min_length=1, max_length=128)],
    ) -> PaymentView:
        payment = await handlers.payment(seller_id, invoice_id)
        return payment_view(payment, amount=str(from_minor(payment.amount, payment.currency)))

    @router.post(
        "/invoices/{invoice_id}/payment/retry",
        status_code=202,
        response_model=RetryAccepted,
        responses={409: {"description": "The last attempt did not fail (`invalid_state`)"}},
        summary="Charge the card again after a failed payment (a new attempt)",
    )
    async def retry_payment(request: Request, seller_id: SellerId, invoice_id: str) -> Response:
        async def act() -> Response:
            attempt = await handlers.retry(seller_id, invoice_id)
            body = RetryAccepted(invoice_id=invoice_id, **attempt_view(attempt).model_dump())
            return JSONResponse(body.model_dump(mode="json"), status_code=202)

        return await idempotency.run(request, seller_id, act)

    return router

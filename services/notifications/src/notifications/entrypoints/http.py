"""The notifications API (`/v1`): which emails an order's buyer was sent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from juniper_shared.auth import SellerId
from juniper_shared.http import ERROR_RESPONSES
from pydantic import BaseModel

from notifications.application.handlers import NotificationHandlers


class NotificationView(BaseModel):
    event_id: str
    template: str
    to: str
    status: Literal["pending", "sent", "failed"]
    attempts: int
    sent_at: datetime | None


class NotificationList(BaseModel):
    items: list[NotificationView]


def build_router(handlers: NotificationHandlers) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

    @router.get(
        "/notifications",
        response_model=NotificationList,
        tags=["notifications"],
        summary="Emails to the buyer about one order, in the order of the events that caused them",
        description=(
            "Only the calling seller's emails are listed: an order of another seller, or one "
            "no email was sent about yet, gives an empty list."
        ),
    )
    async def list_notifications(
        seller_id: SellerId,
        order_id: Annotated[str, Query(min_length=1, max_length=64)],
    ) -> NotificationList:
        deliveries = await handlers.for_order(seller_id, order_id)
        return NotificationList(
            items=[
                NotificationView(
                    event_id=delivery.event_id,
                    template=delivery.template,
                    to=delivery.to,
                    status=delivery.status,
                    attempts=delivery.attempts,
                    sent_at=delivery.sent_at,
                )
                for delivery in deliveries
            ]
        )

    return router

"""The orders API (`/v1`): the All Orders table, order details and the seller's actions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from juniper_shared.auth import SellerId
from juniper_shared.errors import ApiError
from juniper_shared.http import ERROR_RESPONSES
from juniper_shared.idempotency import IdempotencyKeys
from juniper_shared.request_marks import RequestMark

from orders.application.commands import CustomerChoice, NewCustomer, SellerCommands
from orders.domain.order import Order, Status
from orders.entrypoints.schemas import (
    AcceptBody,
    CancelBody,
    CustomerBody,
    CustomerList,
    CustomerView,
    LineIdsBody,
    OrderDetails,
    OrderList,
    QuantitiesBody,
    RejectBody,
    SellerSettingsBody,
    SellerSettingsView,
    customer_view,
    order_details,
    order_row,
)

MAX_PAGE_SIZE = 100
MAX_CUSTOMER_PAGE_SIZE = 500

_IF_MATCH = re.compile(r'^\s*(?:W/)?"?(\d{1,12})"?\s*$')

WRITE_RESPONSES = {
    **ERROR_RESPONSES,
    409: {
        "description": "Not allowed in the order's status (`invalid_state`, `customer_required`)"
    },
    412: {"description": "If-Match does not match the current version (`version_conflict`)"},
}

IfMatch = Annotated[
    str | None,
    Header(description="The version (ETag) the change is based on; quoted or bare", max_length=40),
]


def parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    match = _IF_MATCH.match(value)
    if match is None:
        raise ApiError(422, "validation_error", 'If-Match must be an order version such as "3"')
    return int(match.group(1))


def build_router(commands: SellerCommands, idempotency: IdempotencyKeys) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

    def details_response(order: Order, status_code: int = 200) -> JSONResponse:
        return JSONResponse(
            order_details(order).model_dump(mode="json"),
            status_code=status_code,
            headers={"ETag": f'"{order.version}"'},
        )

    def current(seller_id: str, order_id: str) -> Callable[[], Awaitable[Response]]:
        """The order as it is now: the answer to a retry whose first response was lost."""

        async def render() -> Response:
            return details_response(await commands.order(seller_id, order_id))

        return render

    @router.get(
        "/orders", response_model=OrderList, tags=["orders"], summary="The All Orders table"
    )
    async def list_orders(
        seller_id: SellerId,
        status: Status | None = None,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
        page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 25,
    ) -> OrderList:
        result = await commands.page(
            seller_id, status=status.value if status else None, page=page, page_size=page_size
        )
        return OrderList(
            items=[order_row(order) for order in result.rows],
            total_count=result.total_count,
            page=page,
            page_size=page_size,
        )

    @router.get(
        "/orders/{order_id}", response_model=OrderDetails, tags=["orders"], summary="Order details"
    )
    async def get_order(seller_id: SellerId, order_id: str) -> JSONResponse:
        return details_response(await commands.order(seller_id, order_id))

    @router.post(
        "/orders/{order_id}/accept",
        response_model=OrderDetails,
        responses=WRITE_RESPONSES,
        tags=["orders"],
        summary="Accept (approve) a pending order",
    )
    async def accept_order(
        request: Request,
        seller_id: SellerId,
        order_id: str,
        if_match: IfMatch = None,
        body: AcceptBody | None = None,
    ) -> Response:
        choice = None
        if body is not None and body.customer is not None:
            create = body.customer.create
            choice = CustomerChoice(
                create=NewCustomer(name=create.name, email=create.email) if create else None,
                associate=body.customer.associate,
            )

        async def act(mark: RequestMark | None) -> Response:
            order = await commands.accept(
                seller_id, order_id, if_match=parse_if_match(if_match), mark=mark, customer=choice
            )
            return details_response(order)

        return await idempotency.run_marked(
            request, seller_id, act, current=current(seller_id, order_id)
        )

    @router.post(
        "/orders/{order_id}/reject",
        response_model=OrderDetails,
        responses=WRITE_RESPONSES,
        tags=["orders"],
        summary="Reject a pending order; the buyer is emailed",
    )
    async def reject_order(
        request: Request,
        seller_id: SellerId,
        order_id: str,
        body: RejectBody,
        if_match: IfMatch = None,
    ) -> Response:
        async def act(mark: RequestMark | None) -> Response:
            order = await commands.reject(
                seller_id,
                order_id,
                if_match=parse_if_match(if_match),
                mark=mark,
                reason=body.reason,
                message=body.message,
            )
            return details_response(order)

        return await idempotency.run_marked(
            request, seller_id, act, current=current(seller_id, order_id)
        )

    @router.post(
        "/orders/{order_id}/split",
        response_model=OrderDetails,
        status_code=201,
        responses=WRITE_RESPONSES,
        tags=["orders"],
        summary="Split selected lines into a new pending order",
    )
    async def split_order(
        request: Request,
        seller_id: SellerId,
        order_id: str,
        body: LineIdsBody,
        if_match: IfMatch = None,
    ) -> Response:
        async def act(mark: RequestMark | None) -> Response:
            _, child = await commands.split(
                seller_id,
                order_id,
                if_match=parse_if_match(if_match),
                mark=mark,
                line_ids=body.line_ids,
            )
            response = details_response(child, status_code=201)
            response.headers["Location"] = f"/v1/orders/{child.order_id}"
            return response

        return await idempotency.run_marked(request, seller_id, act)

    @router.patch(
        "/orders/{order_id}/items",
        response_model=OrderDetails,
        responses=WRITE_RESPONSES,
        tags=["orders"],
        summary="Change quantities of one or more lines",
    )
    async def change_quantities(
        request: Request,
        seller_id: SellerId,
        order_id: str,
        body: QuantitiesBody,
        if_match: IfMatch = None,
    ) -> Response:
        quantities = {change.line_id: change.quantity for change in body.items}
        if len(quantities) != len(body.items):
            raise ApiError(422, "validation_error", "a line is named twice")

        async def act(mark: RequestMark | None) -> Response:
            order = await commands.change_quantities(
                seller_id,
                order_id,
                if_match=parse_if_match(if_match),
                mark=mark,
                quantities=quantities,
            )
            return details_response(order)

        return await idempotency.run_marked(
            request, seller_id, act, current=current(seller_id, order_id)
        )

    @router.post(
        "/orders/{order_id}/items/remove",
        response_model=OrderDetails,
        responses=WRITE_RESPONSES,
        tags=["orders"],
        summary="Remove selected lines",
    )
    async def remove_items(
        request: Request,
        seller_id: SellerId,
        order_id: str,
        body: LineIdsBody,
        if_match: IfMatch = None,
    ) -> Response:
        async def act(mark: RequestMark | None) -> Response:
            order = await commands.remove_items(
                seller_id,
                order_id,
                if_match=parse_if_match(if_match),
                mark=mark,
                line_ids=body.line_ids,
            )
            return details_response(order)

        return await idempotency.run_marked(
            request, seller_id, act, current=current(seller_id, order_id)
        )

    @router.post(
        "/orders/{order_id}/cancel",
        response_model=OrderDetails,
        responses=WRITE_RESPONSES,
        tags=["orders"],
        summary="Cancel an approved order that has no invoice",
    )
    async def cancel_order(
        request: Request,
        seller_id: SellerId,
        order_id: str,
        if_match: IfMatch = None,
        body: CancelBody | None = None,
    ) -> Response:
        async def act(mark: RequestMark | None) -> Response:
            order = await commands.cancel(
                seller_id,
                order_id,
                if_match=parse_if_match(if_match),
                mark=mark,
                message=body.message if body else "",
            )
            return details_response(order)

        return await idempotency.run_marked(
            request, seller_id, act, current=current(seller_id, order_id)
        )

    @router.get("/seller/settings", response_model=SellerSettingsView, tags=["seller"])
    async def get_settings(seller_id: SellerId) -> SellerSettingsView:
        return SellerSettingsView(**vars(await commands.seller_settings.get(seller_id)))

    @router.put(
        "/seller/settings",
        response_model=SellerSettingsView,
        tags=["seller"],
        summary="Change the settings named; a new expiry window moves pending orders' deadlines",
    )
    async def put_settings(seller_id: SellerId, body: SellerSettingsBody) -> SellerSettingsView:
        chosen = await commands.update_settings(
            seller_id,
            buyer_access_requires_approval=body.buyer_access_requires_approval,
            pending_order_expiry_days=body.pending_order_expiry_days,
        )
        return SellerSettingsView(**vars(chosen))

    @router.get(
        "/customers", response_model=CustomerList, tags=["customers"], summary="The customers"
    )
    async def list_customers(
        seller_id: SellerId,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
        # The default is the whole list as it was before paging (500 at most).
        page_size: Annotated[int, Query(ge=1, le=MAX_CUSTOMER_PAGE_SIZE)] = MAX_CUSTOMER_PAGE_SIZE,
    ) -> CustomerList:
        result = await commands.customer_page(seller_id, page=page, page_size=page_size)
        return CustomerList(
            items=[customer_view(customer) for customer in result.rows],
            total_count=result.total_count,
            page=page,
            page_size=page_size,
        )

    @router.post(
        "/customers",
        response_model=CustomerView,
        status_code=201,
        tags=["customers"],
        responses=WRITE_RESPONSES,
    )
    async def create_customer(
        request: Request, seller_id: SellerId, body: CustomerBody
    ) -> Response:
        async def act() -> Response:
            customer = await commands.create_customer(
                seller_id,
                customer_id=f"cus-{uuid.uuid4().hex[:16]}",
                name=body.name,
                email=body.email,
                buyer_ids=body.buyer_ids,
            )
            return JSONResponse(customer_view(customer).model_dump(), status_code=201)

        return await idempotency.run(request, seller_id, act)

    @router.get("/customers/{customer_id}", response_model=CustomerView, tags=["customers"])
    async def get_customer(seller_id: SellerId, customer_id: str) -> CustomerView:
        return customer_view(await commands.customer(seller_id, customer_id))

    return router

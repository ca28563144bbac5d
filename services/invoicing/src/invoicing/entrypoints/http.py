"""The invoicing API (`/v1`): preview, confirm, read and print invoices."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from juniper_shared.auth import SellerId, current_seller
from juniper_shared.buyer_links import BuyerLinkKeys
from juniper_shared.errors import ApiError
from juniper_shared.http import ERROR_RESPONSES
from juniper_shared.idempotency import IdempotencyKeys
from juniper_shared.request_marks import RequestMark

from invoicing.adapters.rendering import render_html, render_pdf
from invoicing.application.numbering import Numbering
from invoicing.application.preview import Previews, ShippingDetails
from invoicing.domain.invoice import Invoice, invoice_id_for
from invoicing.entrypoints.schemas import (
    ConfirmedView,
    InvoiceList,
    InvoiceView,
    PreviewBody,
    invoice_view,
)

WRITE_RESPONSES = {
    **ERROR_RESPONSES,
    409: {
        "description": "Order not approved or already invoiced (`order_not_invoiceable`), "
        "or the invoice cannot change in its status (`invalid_state`)"
    },
    503: {
        "description": "Concurrent changes kept winning for too long; retry as it is, after "
        "`Retry-After` (`numbering_busy` on confirm, `invoice_busy` on preview)"
    },
}


_bearer = HTTPBearer(auto_error=False, description="JWT signed HS256 with a `seller_id` claim")


DOCUMENT_HEADERS = {"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"}
"""An invoice is personal, and its URL may carry a buyer link's signature: no shared cache keeps
it, and no Referer passes the URL on."""


def document_path(invoice_id: str) -> str:
    """The resource a buyer link to the invoice's document signs."""
    return f"/v1/invoices/{invoice_id}/document"


def build_router(
    previews: Previews,
    numbering: Numbering,
    idempotency: IdempotencyKeys,
    links: BuyerLinkKeys,
) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES, tags=["invoices"])

    def view(invoice: Invoice) -> InvoiceView:
        return invoice_view(invoice, url=previews.url(invoice.invoice_id))

    @router.post(
        "/orders/{order_id}/invoice/preview",
        response_model=InvoiceView,
        responses=WRITE_RESPONSES,
        summary="Draft the invoice of an approved order with its shipping details",
        description="With `order_version`, a preview is never drafted from an older version of "
        "the order than the seller saw: it waits briefly for invoicing to catch up, then answers "
        "409 `order_not_current` (retry).",
    )
    async def preview_invoice(
        request: Request, seller_id: SellerId, order_id: str, body: PreviewBody
    ) -> Response:
        details = ShippingDetails(
            carrier=body.shipping.carrier,
            tracking_number=body.shipping.tracking_number,
            shipped_at=body.shipping.shipped_at,
            shipping_cost=body.shipping.shipping_cost,
        )

        async def act(mark: RequestMark | None) -> Response:
            invoice = await previews.preview(
                seller_id, order_id, details, order_version=body.order_version, mark=mark
            )
            return JSONResponse(view(invoice).model_dump(mode="json"))

        async def current() -> Response:
            """The draft as it is now: the answer to a retry whose first response was lost."""
            invoice = await previews.invoice(seller_id, invoice_id_for(order_id))
            return JSONResponse(view(invoice).model_dump(mode="json"))

        return await idempotency.run_marked(request, seller_id, act, current=current)

    @router.post(
        "/invoices/{invoice_id}/confirm",
        response_model=ConfirmedView,
        responses=WRITE_RESPONSES,
        summary="Issue the draft with the seller's next gapless number",
    )
    async def confirm_invoice(request: Request, seller_id: SellerId, invoice_id: str) -> Response:
        def confirmed(invoice: Invoice) -> Response:
            assert invoice.number is not None
            view = ConfirmedView(
                invoice_id=invoice.invoice_id,
                number=invoice.number,
                status=invoice.status.value,
                url=previews.url(invoice.invoice_id),
            )
            return JSONResponse(view.model_dump(mode="json"))

        async def act(mark: RequestMark | None) -> Response:
            return confirmed(await numbering.confirm(seller_id, invoice_id, mark=mark))

        async def current() -> Response:
            """The invoice as it is now: the answer to a retry whose first response was lost."""
            return confirmed(await previews.invoice(seller_id, invoice_id))

        return await idempotency.run_marked(request, seller_id, act, current=current)

    @router.get("/invoices/{invoice_id}", response_model=InvoiceView, summary="One invoice")
    async def get_invoice(seller_id: SellerId, invoice_id: str) -> InvoiceView:
        return view(await previews.invoice(seller_id, invoice_id))

    @router.get("/invoices", response_model=InvoiceList, summary="The invoices of an order")
    async def list_invoices(
        seller_id: SellerId, order_id: Annotated[str, Query(min_length=1, max_length=64)]
    ) -> InvoiceList:
        invoices = await previews.invoices_for_order(seller_id, order_id)
        return InvoiceList(items=[view(invoice) for invoice in invoices])

    @router.get(
        "/invoices/{invoice_id}/document",
        response_class=HTMLResponse,
        responses={
            200: {"content": {"application/pdf": {}, "text/html": {}}},
            403: {
                "description": "A buyer link that is wrong, expired or for another invoice "
                "(`forbidden`)",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                },
            },
        },
        summary="The invoice as a printable document (HTML, or PDF with Accept: application/pdf)",
        description="Opens with the seller's token, or without one through a buyer link "
        "(`?expires=<unix>&signature=<hex>` from the buyer's email). A wrong or expired "
        "link, or one for another invoice, is 403 `forbidden`.",
        openapi_extra={"security": [{"HTTPBearer": []}, {}]},
    )
    async def invoice_document(
        request: Request,
        invoice_id: str,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        accept: Annotated[str, Header()] = "text/html",
        expires: Annotated[str | None, Query(max_length=32)] = None,
        signature: Annotated[str | None, Query(max_length=128)] = None,
    ) -> Response:
        if expires is None and signature is None:
            seller_id = await current_seller(request, credentials)
            invoice = await previews.invoice(seller_id, invoice_id)
        else:
            if not links.verify(
                document_path(invoice_id),
                expires=int(expires) if expires and expires.isascii() and expires.isdigit() else 0,
                given=signature or "",
                now=previews.clock(),
            ):
                raise ApiError(403, "forbidden", "this link is invalid or has expired")
            invoice = await previews.invoice_by_link(invoice_id)
        if "application/pdf" in accept.lower():
            name = invoice.number or invoice.invoice_id
            return Response(
                render_pdf(invoice),
                media_type="application/pdf",
                headers={
                    **DOCUMENT_HEADERS,
                    "Content-Disposition": f'inline; filename="{name}.pdf"',
                },
            )
        return HTMLResponse(render_html(invoice), headers=DOCUMENT_HEADERS)

    return router

"""The Shipping tab: Create Invoice, the preview, Confirm, the invoice, Retry payment."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console.adapters.api import ApiProblem, Json
from console.entrypoints.order_details import activity, activity_since
from console.entrypoints.pages import Console, ConsoleDep, Problems, SellerDep, render, valid_id
from console.entrypoints.session import Seller, intent_key

router = APIRouter()

PREVIEW_TRIES = 6
"""Invoicing learns of an approval from Kafka: a preview right after Accept may come early."""


async def shipping_page(
    request: Request,
    console: Console,
    seller: Seller,
    order_id: str,
    *,
    problems: Problems | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    order = await console.apis.orders.order(valid_id(order_id), token=seller.token)
    extra = await activity(console, seller, order)
    defaults = {
        "carrier": "",
        "tracking_number": "",
        "shipped_at": datetime.now(UTC).date().isoformat(),
        "shipping_cost": order.get("shipping_fee") or "0.00",
    }
    return render(
        console,
        request,
        "shipping.html",
        {
            "seller": seller,
            "order": order,
            "tab": "shipping",
            "problems": problems or Problems(),
            "form": {**defaults, **(form or {})},
            "done": request.query_params.get("done", ""),
            "activity_since": activity_since(order, extra),
            **extra,
        },
        status_code=status_code,
    )


@router.get("/orders/{order_id}/shipping", response_class=HTMLResponse)
async def shipping(
    request: Request, console: ConsoleDep, seller: SellerDep, order_id: str
) -> HTMLResponse:
    return await shipping_page(request, console, seller, order_id)


@router.post("/orders/{order_id}/invoice/preview")
async def create_invoice(
    request: Request,
    console: ConsoleDep,
    seller: SellerDep,
    order_id: str,
    version: Annotated[int, Form()],
    carrier: Annotated[str, Form()] = "",
    tracking_number: Annotated[str, Form()] = "",
    shipped_at: Annotated[str, Form()] = "",
    shipping_cost: Annotated[str, Form()] = "",
) -> Response:
    shipping_details = {
        "carrier": carrier.strip(),
        "tracking_number": tracking_number.strip(),
        "shipped_at": shipped_at.strip(),
        "shipping_cost": shipping_cost.strip(),
    }
    missing = {
        name: f"Enter the {label}."
        for name, label in (
            ("carrier", "carrier"),
            ("tracking_number", "tracking number"),
            ("shipped_at", "date shipped"),
            ("shipping_cost", "shipping cost"),
        )
        if not shipping_details[name]
    }
    if missing:
        return await shipping_page(
            request,
            console,
            seller,
            order_id,
            problems=Problems(missing),
            form=shipping_details,
            status_code=422,
        )
    key = intent_key(seller, order_id, version, "preview", shipping_details)
    draft: Json | None = None
    problem: ApiProblem | None = None
    for attempt in range(PREVIEW_TRIES):
        try:
            draft = await console.apis.invoicing.preview(
                order_id,
                token=seller.token,
                shipping=shipping_details,
                order_version=version,
                key=key,
            )
            break
        except ApiProblem as error:
            problem = error
            if error.status == 401:
                raise
            if error.code not in ("order_not_invoiceable", "order_not_current", "not_found"):
                break
            order = await console.apis.orders.order(order_id, token=seller.token)
            if order["status"] != "approved" or attempt == PREVIEW_TRIES - 1:
                break
            await asyncio.sleep(0.5 * (attempt + 1))
    if draft is None:
        assert problem is not None
        problems = Problems()
        problems.add(_field_of(problem), problem)
        return await shipping_page(
            request,
            console,
            seller,
            order_id,
            problems=problems,
            form=shipping_details,
            status_code=problem.status if problem.status < 500 else 502,
        )
    return RedirectResponse(
        f"/orders/{order_id}/invoices/{draft['invoice_id']}/preview", status_code=303
    )


def _field_of(problem: ApiProblem) -> str:
    """The shipping field a validation error names, else the Create Invoice button."""
    if problem.code == "validation_error":
        for name in ("carrier", "tracking_number", "shipped_at", "shipping_cost"):
            if name in problem.message:
                return name
    return "create_invoice"


@router.get("/orders/{order_id}/invoices/{invoice_id}/preview", response_class=HTMLResponse)
async def invoice_preview(
    request: Request, console: ConsoleDep, seller: SellerDep, order_id: str, invoice_id: str
) -> Response:
    return await preview_page(request, console, seller, order_id, invoice_id)


async def preview_page(
    request: Request,
    console: Console,
    seller: Seller,
    order_id: str,
    invoice_id: str,
    *,
    problems: Problems | None = None,
    status_code: int = 200,
) -> Response:
    invoice = await console.apis.invoicing.invoice(valid_id(invoice_id), token=seller.token)
    if invoice["status"] != "draft":
        return RedirectResponse(f"/orders/{order_id}/shipping", status_code=303)
    return render(
        console,
        request,
        "invoice_preview.html",
        {
            "seller": seller,
            "invoice": invoice,
            "order_id": invoice["order_id"],
            "problems": problems or Problems(),
        },
        status_code=status_code,
    )


@router.post("/orders/{order_id}/invoices/{invoice_id}/confirm")
async def confirm_invoice(
    request: Request, console: ConsoleDep, seller: SellerDep, order_id: str, invoice_id: str
) -> Response:
    try:
        await console.apis.invoicing.confirm(
            valid_id(invoice_id), token=seller.token, key=intent_key(seller, invoice_id, "confirm")
        )
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        problems = Problems()
        problems.add("confirm", problem)
        return await preview_page(
            request,
            console,
            seller,
            order_id,
            invoice_id,
            problems=problems,
            status_code=problem.status if problem.status < 500 else 502,
        )
    return RedirectResponse(f"/orders/{order_id}/shipping?done=confirmed", status_code=303)


@router.post("/orders/{order_id}/invoices/{invoice_id}/retry")
async def retry_payment(
    request: Request,
    console: ConsoleDep,
    seller: SellerDep,
    order_id: str,
    invoice_id: str,
    attempts: Annotated[int, Form()],
) -> Response:
    key = intent_key(seller, invoice_id, "retry", attempts)
    try:
        await console.apis.payments.retry(valid_id(invoice_id), token=seller.token, key=key)
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        problems = Problems()
        problems.add(f"retry:{invoice_id}", problem)
        return await shipping_page(
            request,
            console,
            seller,
            order_id,
            problems=problems,
            status_code=problem.status if problem.status < 500 else 502,
        )
    return RedirectResponse(f"/orders/{order_id}/shipping?done=retried", status_code=303)


DOCUMENT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
"""The invoice is invoicing's own document: shown as it is, with no script able to run."""


@router.get("/orders/{order_id}/invoices/{invoice_id}/document")
async def invoice_document(
    console: ConsoleDep, seller: SellerDep, order_id: str, invoice_id: str, pdf: bool = False
) -> Response:
    """The invoice link: the document as invoicing prints it, fetched with the seller's token."""
    content, media_type = await console.apis.invoicing.document(
        valid_id(invoice_id), token=seller.token, pdf=pdf
    )
    suffix = "pdf" if pdf else "html"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", invoice_id)
    return Response(
        content,
        media_type=media_type,
        headers={
            "Content-Security-Policy": DOCUMENT_POLICY,
            "Content-Disposition": f'inline; filename="invoice-{name}.{suffix}"',
        },
    )

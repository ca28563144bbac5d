"""Order Details: the order, its activity (invoices, payments, emails), live updates."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console.adapters.api import ApiProblem, Json
from console.entrypoints.pages import (
    ID,
    Console,
    ConsoleDep,
    Problems,
    SellerDep,
    explain,
    fingerprint,
    render,
    valid_id,
)
from console.entrypoints.session import Seller

router = APIRouter()


async def activity(console: Console, seller: Seller, order: Json) -> dict[str, Any]:
    """What happened to the order beyond its own document: invoices, payments, emails.

    Each comes from another service; one that does not answer leaves its part of the page
    saying so (`unavailable`), and the rest of the order still shows."""
    apis = console.apis
    unavailable: list[str] = []

    async def optional(service: str, call: Awaitable[Any], empty: Any) -> Any:
        try:
            return await call
        except ApiProblem as problem:
            if problem.status == 401:
                raise
            unavailable.append(service)
            return empty

    invoices, emails = await asyncio.gather(
        optional("invoicing", apis.invoicing.for_order(order["order_id"], token=seller.token), []),
        optional(
            "notifications", apis.notifications.emails(order["order_id"], token=seller.token), []
        ),
    )
    issued = [invoice for invoice in invoices if invoice["status"] != "draft"]
    payments = await asyncio.gather(
        *(
            optional(
                "payments", apis.payments.payment(invoice["invoice_id"], token=seller.token), None
            )
            for invoice in issued
        )
    )
    return {
        "invoices": invoices,
        "drafts": [invoice for invoice in invoices if invoice["status"] == "draft"],
        "issued": list(zip(issued, payments, strict=True)),
        "emails": sorted(emails, key=lambda mail: str(mail.get("sent_at") or "")),
        "unavailable": sorted(set(unavailable)),
    }


def activity_since(order: Json, extra: dict[str, Any]) -> str:
    return fingerprint(
        order["history"], order["status"], extra["issued"], extra["emails"], extra["unavailable"]
    )


async def customer_of(console: Console, seller: Seller, order: Json) -> Json | None:
    """The customer the order's buyer belongs to, shown by name (None before an accept)."""
    if not order.get("customer_id"):
        return None
    try:
        return await console.apis.orders.customer(order["customer_id"], token=seller.token)
    except ApiProblem as problem:
        if problem.status == 404:
            return None
        raise


async def order_page(
    request: Request,
    console: Console,
    seller: Seller,
    order_id: str,
    *,
    problems: Problems | None = None,
    dialog: str = "",
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    order = await console.apis.orders.order(valid_id(order_id), token=seller.token)
    extra = await activity(console, seller, order)
    customer = await customer_of(console, seller, order)
    customers: list[Json] = []
    if dialog == "customer":
        customers = await console.apis.orders.customers(token=seller.token)
    split_into = request.query_params.get("split_into", "")
    return render(
        console,
        request,
        "order.html",
        {
            "seller": seller,
            "order": order,
            "tab": "details",
            "problems": problems or Problems(),
            "dialog": dialog,
            "form": form or {},
            "customers": customers,
            "customer": customer,
            "split_into": split_into if ID.match(split_into) else "",
            "done": request.query_params.get("done", ""),
            "body_since": fingerprint(order["version"]),
            "activity_since": activity_since(order, extra),
            **extra,
        },
        status_code=status_code,
    )


@router.get("/orders/{order_id}", response_class=HTMLResponse)
async def order_details(
    request: Request, console: ConsoleDep, seller: SellerDep, order_id: str
) -> HTMLResponse:
    return await order_page(request, console, seller, order_id)


@router.get("/orders/{order_id}/live/{part}", response_class=HTMLResponse)
async def order_live(
    request: Request,
    console: ConsoleDep,
    seller: SellerDep,
    order_id: str,
    part: str,
    since: str = "",
) -> Response:
    """The polled parts of Order Details: 204 while nothing changed."""
    try:
        order = await console.apis.orders.order(valid_id(order_id), token=seller.token)
        extra: dict[str, Any] = {
            "invoices": [],
            "drafts": [],
            "issued": [],
            "emails": [],
            "unavailable": [],
            "customer": None,
        }
        if part in ("activity", "invoice"):
            extra = await activity(console, seller, order)
        elif fingerprint(order["version"]) != since:
            extra["customer"] = await customer_of(console, seller, order)
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        return Response(status_code=204)
    templates = {
        "body": "_order_body.html",
        "activity": "_activity.html",
        "invoice": "_invoice.html",
    }
    if part not in templates:
        return Response(status_code=404)
    current = fingerprint(order["version"]) if part == "body" else activity_since(order, extra)
    if current == since:
        return Response(status_code=204)
    return console.templates.TemplateResponse(
        request,
        templates[part],
        {
            "poll_seconds": console.settings.console_poll_seconds,
            "order": order,
            "problems": Problems(),
            "dialog": "",
            "form": {},
            "customers": [],
            "body_since": current,
            "activity_since": current,
            **extra,
        },
    )


async def act(
    request: Request,
    console: Console,
    seller: Seller,
    order_id: str,
    *,
    control: str,
    call: Any,
    done: str,
    form: dict[str, Any] | None = None,
) -> Response:
    """Run one write; on success show the order again, on failure say why beside `control`."""
    try:
        result: Json = await call
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        problems = Problems()
        dialog = ""
        if problem.code == "customer_required":
            dialog = "customer"  # the prompt explains it: no error beside it
        elif problem.code == "version_conflict":
            problems.notice = explain(problem)
        else:
            problems.add(control, problem)
        return await order_page(
            request,
            console,
            seller,
            order_id,
            problems=problems,
            dialog=dialog,
            form=form,
            status_code=problem.status if problem.status < 500 else 502,
        )
    target = f"/orders/{order_id}?done={done}"
    if done == "split":
        target = f"/orders/{order_id}?done=split&split_into={result['order_id']}"
    return RedirectResponse(target, status_code=303)

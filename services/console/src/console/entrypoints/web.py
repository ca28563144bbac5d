"""The console's screens: sign-in, All Orders, Order Details, Shipping and the invoice preview.

Every route reads the form, calls one or more APIs with the seller's token, and renders a
template. Writes carry `If-Match` (the version the page showed) and an `Idempotency-Key`
derived from the intention (`intent_key`), so a double click or a stale page acts at most once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from console.adapters.api import ApiProblem, Json
from console.adapters.invoicing import InvoicingApi
from console.adapters.notifications import NotificationsApi
from console.adapters.orders import OrdersApi
from console.adapters.payments import PaymentsApi
from console.entrypoints.session import Seller, SignInRequired, intent_key, seller_of, token_of
from console.settings import ConsoleSettings

PAGE_SIZE = 20
SEARCH_PAGES = 5
"""A buyer search reads the newest SEARCH_PAGES x 100 orders (the API has no search)."""
STATUSES = ("pending", "approved", "rejected", "cancelled")
PREVIEW_TRIES = 6
"""Invoicing learns of an approval from Kafka: a preview right after Accept may come early."""
ID = re.compile(r"^[\x21-\x7e]{1,128}$")


@dataclass
class Apis:
    orders: OrdersApi
    invoicing: InvoicingApi
    payments: PaymentsApi
    notifications: NotificationsApi

    async def close(self) -> None:
        for api in (self.orders, self.invoicing, self.payments, self.notifications):
            await api.close()


@dataclass
class Console:
    apis: Apis
    settings: ConsoleSettings
    templates: Jinja2Templates


@dataclass
class Problems:
    """What went wrong, by the control that caused it (`accept`, `qty:<line_id>`...)."""

    by_control: dict[str, str] = field(default_factory=dict)
    notice: str = ""

    def add(self, control: str, problem: ApiProblem) -> None:
        self.by_control[control] = explain(problem)


def explain(problem: ApiProblem) -> str:
    """An API's error, in words a seller reads beside the button they pressed."""
    hints = {
        "version_conflict": "This order changed since the page was shown; it now shows the "
        "current order. Check it and try again.",
        "customer_required": "This buyer is not one of your customers yet: create a customer "
        "or associate an existing one to accept the order.",
        "order_not_invoiceable": "Only approved orders can be invoiced.",
        "order_not_current": "Invoicing has not yet seen the latest change to this order; "
        "try again in a moment.",
        "request_in_progress": "The same request is still being processed; wait a moment.",
        "unauthorized": "Your sign-in has expired; sign in again.",
    }
    hint = hints.get(problem.code)
    return f"{hint} ({problem.message})" if hint else problem.message


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def signed_in(request: Request, console: Annotated[Console, Depends(console_of)]) -> Seller:
    token = token_of(request, console.settings.console_token_cookie)
    if token is None:
        raise SignInRequired
    return seller_of(token)


ConsoleDep = Annotated[Console, Depends(console_of)]
SellerDep = Annotated[Seller, Depends(signed_in)]

router = APIRouter()


def render(
    console: Console,
    request: Request,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
) -> HTMLResponse:
    return console.templates.TemplateResponse(
        request,
        template,
        {"poll_seconds": console.settings.console_poll_seconds, **context},
        status_code=status_code,
    )


def fingerprint(*data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def valid_id(value: str) -> str:
    if not ID.match(value):
        raise ApiProblem(404, "not_found", "No such order.")
    return value


# --- sign-in -------------------------------------------------------------------------------


@router.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    return RedirectResponse("/orders", status_code=303)


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, console: ConsoleDep) -> Response:
    settings = console.settings
    if not settings.console_dev_sign_in and settings.console_sign_in_url:
        return RedirectResponse(settings.console_sign_in_url, status_code=303)
    return render(
        console,
        request,
        "sign_in.html",
        {
            "dev": settings.console_dev_sign_in,
            "sellers": settings.dev_sellers() if settings.console_dev_sign_in else [],
            "cookie": settings.console_token_cookie,
            "expired": request.query_params.get("expired") == "1",
        },
    )


@router.post("/sign-in")
async def sign_in(
    request: Request, console: ConsoleDep, seller_id: Annotated[str, Form()]
) -> Response:
    from juniper_shared.auth import issue_token

    settings = console.settings
    if not settings.console_dev_sign_in or settings.auth_jwt_secret is None:
        return Response("The development sign-in is off.", status_code=404)
    if seller_id not in settings.dev_sellers():
        return render(
            console,
            request,
            "sign_in.html",
            {"dev": True, "sellers": settings.dev_sellers(), "error": "Choose a demo seller."},
            status_code=422,
        )
    token = issue_token(
        seller_id,
        settings.auth_jwt_secret.get_secret_value(),
        ttl_seconds=settings.console_dev_token_ttl_seconds,
    )
    response = RedirectResponse("/orders", status_code=303)
    response.set_cookie(
        settings.console_token_cookie,
        token,
        max_age=settings.console_dev_token_ttl_seconds,
        httponly=True,
        samesite="lax",
        secure=settings.console_secure_cookies,
    )
    return response


@router.post("/sign-out")
async def sign_out(console: ConsoleDep) -> RedirectResponse:
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(console.settings.console_token_cookie)
    return response


# --- All Orders ----------------------------------------------------------------------------


async def orders_table(
    console: Console, seller: Seller, *, status: str, q: str, page_number: int
) -> dict[str, Any]:
    orders = console.apis.orders
    status = status if status in STATUSES else ""
    q = q.strip()[:128]
    note = ""
    if not q:
        listing = await orders.page(
            token=seller.token, status=status or None, page=page_number, page_size=PAGE_SIZE
        )
        rows, total = listing["items"], int(listing["total_count"])
    else:
        found: dict[str, Json] = {}
        if ID.match(q):
            try:
                exact = await orders.order(q, token=seller.token)
                if not status or exact["status"] == status:
                    found[exact["order_id"]] = exact
            except ApiProblem as problem:
                if problem.status != 404:
                    raise
        needle = q.lower()
        for number in range(1, SEARCH_PAGES + 1):
            listing = await orders.page(
                token=seller.token, status=status or None, page=number, page_size=100
            )
            for row in listing["items"]:
                buyer = row.get("buyer") or {}
                haystack = " ".join(
                    str(buyer.get(key, "")) for key in ("id", "name", "email", "company")
                )
                if needle in row["order_id"].lower() or needle in haystack.lower():
                    found.setdefault(row["order_id"], row)
            if number * 100 >= int(listing["total_count"]):
                break
        else:
            note = f"Searched the newest {SEARCH_PAGES * 100} orders."
        matches = sorted(found.values(), key=lambda row: str(row["placed_at"]), reverse=True)
        total = len(matches)
        rows = matches[(page_number - 1) * PAGE_SIZE : page_number * PAGE_SIZE]
    pages = max(1, -(-total // PAGE_SIZE))
    return {
        "rows": rows,
        "total": total,
        "status": status,
        "q": q,
        "page_number": page_number,
        "pages": pages,
        "note": note,
        "statuses": STATUSES,
        "since": fingerprint(rows, total, note),
    }


@router.get("/orders", response_class=HTMLResponse)
async def all_orders(
    request: Request,
    console: ConsoleDep,
    seller: SellerDep,
    status: str = "",
    q: str = "",
    page: int = 1,
) -> HTMLResponse:
    table = await orders_table(
        console, seller, status=status, q=q, page_number=max(1, min(page, 100_000))
    )
    return render(console, request, "orders.html", {"seller": seller, **table})


@router.get("/orders/table", response_class=HTMLResponse)
async def all_orders_live(
    request: Request,
    console: ConsoleDep,
    seller: SellerDep,
    status: str = "",
    q: str = "",
    page: int = 1,
    since: str = "",
) -> Response:
    try:
        table = await orders_table(
            console, seller, status=status, q=q, page_number=max(1, min(page, 100_000))
        )
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        return Response(status_code=204)
    if table["since"] == since:
        return Response(status_code=204)
    return console.templates.TemplateResponse(
        request,
        "_orders_table.html",
        {"poll_seconds": console.settings.console_poll_seconds, **table},
    )


# --- Order Details -------------------------------------------------------------------------


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


@router.post("/orders/{order_id}/accept")
async def accept(
    request: Request,
    console: ConsoleDep,
    seller: SellerDep,
    order_id: str,
    version: Annotated[int, Form()],
    customer: Annotated[str, Form()] = "",
    customer_name: Annotated[str, Form()] = "",
    customer_email: Annotated[str, Form()] = "",
    customer_id: Annotated[str, Form()] = "",
) -> Response:
    body: Json | None = None
    form = {"customer": customer, "customer_name": customer_name, "customer_email": customer_email}
    if customer == "create":
        body = {"customer": {"create": {"name": customer_name, "email": customer_email}}}
    elif customer == "associate":
        if not customer_id:
            problems = Problems({"customer": "Choose the customer to associate this buyer with."})
            return await order_page(
                request,
                console,
                seller,
                order_id,
                problems=problems,
                dialog="customer",
                form=form,
                status_code=422,
            )
        body = {"customer": {"associate": customer_id}}
    key = intent_key(seller, order_id, version, "accept", body)
    call = console.apis.orders.act(
        order_id, "accept", token=seller.token, body=body, version=version, key=key
    )
    return await act(
        request,
        console,
        seller,
        order_id,
        control="accept",
        call=call,
        done="accepted",
        form=form,
    )


@router.post("/orders/{order_id}/reject")
async def reject(
    request: Request,
    console: ConsoleDep,
    seller: SellerDep,
    order_id: str,
    version: Annotated[int, Form()],
    reason: Annotated[str, Form()] = "",
    message: Annotated[str, Form()] = "",
) -> Response:
    form = {"reason": reason, "message": message}
    if not reason:
        problems = Problems({"reject": "Choose why you reject the order."})
        return await order_page(
            request, console, seller, order_id, problems=problems, form=form, status_code=422
        )
    body = {"reason": reason, "message": message}
    key = intent_key(seller, order_id, version, "reject", body)
    call = console.apis.orders.act(
        order_id, "reject", token=seller.token, body=body, version=version, key=key
    )
    return await act(
        request, console, seller, order_id, control="reject", call=call, done="rejected", form=form
    )


@router.post("/orders/{order_id}/cancel")
async def cancel(
    request: Request,
    console: ConsoleDep,
    seller: SellerDep,
    order_id: str,
    version: Annotated[int, Form()],
    message: Annotated[str, Form()] = "",
) -> Response:
    body = {"message": message}
    key = intent_key(seller, order_id, version, "cancel", body)
    call = console.apis.orders.act(
        order_id, "cancel", token=seller.token, body=body, version=version, key=key
    )
    return await act(
        request,
        console,
        seller,
        order_id,
        control="cancel",
        call=call,
        done="cancelled",
        form={"cancel_message": message},
    )


@router.post("/orders/{order_id}/items")
async def items(
    request: Request, console: ConsoleDep, seller: SellerDep, order_id: str
) -> Response:
    """The Order Items form: Update a quantity, Split from Order (then Split), delete."""
    form = await request.form()
    try:
        version = int(str(form.get("version", "")))
    except ValueError:
        return Response("version missing", status_code=422)
    action = str(form.get("action", ""))
    line_ids = [str(value) for value in form.getlist("line_id")]
    quantities = {
        key.removeprefix("qty-"): str(value)
        for key, value in form.items()
        if key.startswith("qty-")
    }
    echo = {"line_ids": line_ids, "quantities": quantities}
    orders = console.apis.orders

    async def again(problems: Problems, dialog: str = "", status_code: int = 422) -> Response:
        return await order_page(
            request,
            console,
            seller,
            order_id,
            problems=problems,
            dialog=dialog,
            form=echo,
            status_code=status_code,
        )

    if action.startswith("update:") or action == "update-changed":
        if action == "update-changed":
            current = await orders.order(valid_id(order_id), token=seller.token)
            was = {line["line_id"]: str(line["quantity"]) for line in current["items"]}
            changed = [line for line, text in quantities.items() if was.get(line) != text.strip()]
        else:
            changed = [action.removeprefix("update:")]
        if not changed:
            return await again(Problems({"items": "Change a quantity first."}))
        wrong = {
            f"qty:{line}": "Enter a whole number, 1 or more."
            for line in changed
            if not quantities.get(line, "").strip().isdigit() or int(quantities[line].strip()) < 1
        }
        if wrong:
            return await again(Problems(wrong))
        line_id = changed[0]
        body: Json = {
            "items": [{"line_id": line, "quantity": int(quantities[line])} for line in changed]
        }
        key = intent_key(seller, order_id, version, "quantities", body)
        call = orders.act(
            order_id,
            "items",
            token=seller.token,
            body=body,
            version=version,
            key=key,
            method="PATCH",
        )
        return await act(
            request,
            console,
            seller,
            order_id,
            control=f"qty:{line_id}",
            call=call,
            done="updated",
            form=echo,
        )
    if action in ("split", "confirm-split", "delete") and not line_ids:
        verb = "delete" if action == "delete" else "split from the order"
        return await again(Problems({"items": f"Select the items to {verb} first."}))
    if action == "split":
        return await again(Problems(), dialog="split", status_code=200)
    if action == "confirm-split":
        body = {"line_ids": sorted(line_ids)}
        key = intent_key(seller, order_id, version, "split", body)
        call = orders.act(
            order_id, "split", token=seller.token, body=body, version=version, key=key
        )
        return await act(
            request, console, seller, order_id, control="items", call=call, done="split", form=echo
        )
    if action == "delete":
        body = {"line_ids": sorted(line_ids)}
        key = intent_key(seller, order_id, version, "remove", body)
        call = orders.act(
            order_id, "items/remove", token=seller.token, body=body, version=version, key=key
        )
        return await act(
            request,
            console,
            seller,
            order_id,
            control="items",
            call=call,
            done="deleted",
            form=echo,
        )
    return await again(Problems({"items": "Choose Update, Split from Order or Delete."}))


# --- Shipping tab, invoice preview, payment ------------------------------------------------


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


# --- Profile settings ----------------------------------------------------------------------


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request, console: ConsoleDep, seller: SellerDep) -> HTMLResponse:
    current = await console.apis.orders.settings(token=seller.token)
    return render(
        console,
        request,
        "settings.html",
        {"seller": seller, "settings": current, "saved": request.query_params.get("saved") == "1"},
    )


@router.post("/settings")
async def save_settings(
    console: ConsoleDep,
    seller: SellerDep,
    requires_approval: Annotated[str, Form()] = "off",
) -> RedirectResponse:
    await console.apis.orders.save_settings(
        token=seller.token, requires_approval=requires_approval == "on"
    )
    return RedirectResponse("/settings?saved=1", status_code=303)

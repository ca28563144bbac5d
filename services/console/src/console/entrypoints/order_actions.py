"""The Order Details buttons: Accept (with a customer), Reject, Cancel, the items form."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from console.adapters.api import Json
from console.entrypoints.order_details import act, order_page
from console.entrypoints.pages import Console, ConsoleDep, Problems, SellerDep, valid_id
from console.entrypoints.session import Seller, intent_key

router = APIRouter()


def order_write(
    console: Console,
    seller: Seller,
    order_id: str,
    version: int,
    *,
    intent: str,
    path: str,
    body: Json | None,
    method: str = "POST",
) -> Awaitable[Json]:
    """The orders API call of one action, keyed by what the seller meant: a double click or a
    resubmitted page sends the same Idempotency-Key, so the action happens once."""
    key = intent_key(seller, order_id, version, intent, body)
    return console.apis.orders.act(
        order_id, path, token=seller.token, body=body, version=version, key=key, method=method
    )


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
    call = order_write(
        console, seller, order_id, version, intent="accept", path="accept", body=body
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
    call = order_write(
        console, seller, order_id, version, intent="reject", path="reject", body=body
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
    call = order_write(
        console, seller, order_id, version, intent="cancel", path="cancel", body=body
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
        call = order_write(
            console,
            seller,
            order_id,
            version,
            intent="quantities",
            path="items",
            body=body,
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
        call = order_write(
            console, seller, order_id, version, intent="split", path="split", body=body
        )
        return await act(
            request, console, seller, order_id, control="items", call=call, done="split", form=echo
        )
    if action == "delete":
        body = {"line_ids": sorted(line_ids)}
        call = order_write(
            console, seller, order_id, version, intent="remove", path="items/remove", body=body
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

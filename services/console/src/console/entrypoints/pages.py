"""What every screen shares: the console's parts, the signed-in seller, rendering, problems.

Each screen is a module of routes (sign_in, orders_table, order_details, order_actions,
invoices, profile): it reads the form, calls the APIs with the seller's token and renders a
template. Writes carry `If-Match` (the version the page showed) and an `Idempotency-Key`
derived from the intention (`session.intent_key`), so a double click or a stale page acts once.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from console.adapters.api import ApiProblem
from console.adapters.invoicing import InvoicingApi
from console.adapters.notifications import NotificationsApi
from console.adapters.orders import OrdersApi
from console.adapters.payments import PaymentsApi
from console.entrypoints.session import Seller, SignInRequired, seller_of, token_of
from console.settings import ConsoleSettings

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

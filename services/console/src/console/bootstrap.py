"""The composition root: settings, one API client per service, templates, routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from juniper_shared.asgi import BodySizeLimit, Observe
from juniper_shared.http import serve
from juniper_shared.logs import configure_logging
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from console.adapters.api import ApiProblem, create_client
from console.adapters.invoicing import InvoicingApi
from console.adapters.notifications import NotificationsApi
from console.adapters.orders import OrdersApi
from console.adapters.payments import PaymentsApi
from console.entrypoints import (
    formatting,
    invoices,
    order_actions,
    order_details,
    orders_table,
    profile,
    sign_in,
)
from console.entrypoints.pages import Apis, Console, render
from console.entrypoints.session import SignInRequired
from console.settings import ConsoleSettings

SERVICE = "console"
HERE = Path(__file__).parent
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""What a screen needs and no more: same-origin scripts and styles, no inline code."""
log = logging.getLogger(__name__)


def build_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters.update(
        money=formatting.money,
        when=formatting.when,
        iso=formatting.iso,
        label=formatting.label,
        payment_method=formatting.payment_method,
        address=formatting.address,
    )
    templates.env.globals["reject_reasons"] = {
        code: text
        for code, text in formatting.REJECT_REASONS.items()
        if code != "buyer_not_approved"
    }
    return templates


def build_apis(settings: ConsoleSettings) -> Apis:
    timeout = settings.api_timeout_seconds
    return Apis(
        orders=OrdersApi("orders", create_client(settings.orders_url, timeout)),
        invoicing=InvoicingApi("invoicing", create_client(settings.invoicing_url, timeout)),
        payments=PaymentsApi("payments", create_client(settings.payments_url, timeout)),
        notifications=NotificationsApi(
            "notifications", create_client(settings.notifications_url, timeout)
        ),
    )


def build_app(settings: ConsoleSettings, apis: Apis | None = None) -> FastAPI:
    """The console; `apis` replaces the four HTTP clients (tests pass fakes)."""
    apis = apis or build_apis(settings)
    console = Console(apis=apis, settings=settings, templates=build_templates())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await apis.close()

    app = FastAPI(
        title="JuniperMarket Seller Console",
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.console = console
    app.add_middleware(BodySizeLimit)
    app.add_middleware(Observe)  # correlation id (sent on to the APIs) and latency per route
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for screen in (sign_in, orders_table, order_details, order_actions, invoices, profile):
        app.include_router(screen.router)

    @app.middleware("http")
    async def same_origin_writes(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """A form posted from another site never acts with the seller's cookie."""
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("origin")
            host = request.headers.get("host", "")
            site = request.headers.get("sec-fetch-site", "same-origin")
            if site == "cross-site" or (origin and urlsplit(origin).netloc != host):
                return Response("Cross-site form refused.", status_code=403)
        response = await call_next(request)
        if request.method == "POST" and request.headers.get("hx-boosted") == "true":
            # A form answered with a page (its errors) rather than a redirect: the address bar
            # keeps the page's address, not the form's (which only answers POST).
            response.headers["HX-Push-Url"] = "false"
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.exception_handler(SignInRequired)
    async def on_sign_in_required(request: Request, _: SignInRequired) -> Response:
        return _to_sign_in(request, expired=False)

    @app.exception_handler(ApiProblem)
    async def on_api_problem(request: Request, problem: ApiProblem) -> Response:
        if problem.status == 401:
            return _to_sign_in(request, expired=True)
        if (
            request.headers.get("hx-request") == "true"
            and request.headers.get("hx-boosted") != "true"
        ):
            return Response(status_code=204)
        return render(
            console,
            request,
            "problem.html",
            {"problem": problem},
            status_code=problem.status if problem.status < 500 else 502,
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready when the orders API answers: every screen needs it. The other three are
        optional: a screen says which one is not answering and shows the rest."""
        try:
            answer = await asyncio.wait_for(apis.orders.client.get("/healthz"), timeout=3)
        except Exception as error:
            return JSONResponse(
                {"error": {"code": "not_ready", "message": f"orders does not answer: {error!r}"}},
                status_code=503,
            )
        if answer.status_code != 200:
            return JSONResponse(
                {"error": {"code": "not_ready", "message": f"orders answers {answer.status_code}"}},
                status_code=503,
            )
        return JSONResponse({"status": "ready"})

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(request: Request, _: RequestValidationError) -> Response:
        problem = ApiProblem(422, "validation_error", "That address or form is not valid.")
        return render(console, request, "problem.html", {"problem": problem}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException) -> Response:
        message = "There is no such page." if error.status_code == 404 else str(error.detail)
        problem = ApiProblem(error.status_code, "http_error", message)
        return render(
            console, request, "problem.html", {"problem": problem}, status_code=error.status_code
        )

    return app


def _to_sign_in(request: Request, *, expired: bool) -> Response:
    target = "/sign-in?expired=1" if expired else "/sign-in"
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def main() -> None:
    import uvloop

    settings = ConsoleSettings()
    configure_logging(SERVICE, settings.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per API call otherwise
    if settings.console_dev_sign_in:
        log.warning(
            "development sign-in is on: anyone reaching this console can act as a demo seller"
        )
    uvloop.run(serve(build_app(settings), host=settings.http_host, port=settings.http_port))

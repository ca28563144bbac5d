"""The HTTP face every service shares: contract error bodies, health, metrics, limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import parse_qsl

import uvloop
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from juniper_shared import tracing
from juniper_shared.auth import short_secret_warning
from juniper_shared.errors import ApiError, DomainError
from juniper_shared.logs import correlation_id
from juniper_shared.metrics import HTTP_REQUESTS
from juniper_shared.settings import ServiceSettings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
"""Largest request body any endpoint accepts (413 above)."""

ReadinessCheck = Callable[[], Awaitable[None]]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "model": None,
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for status, description in {
        401: "Missing or invalid token (`unauthorized`)",
        404: "Not found, or another seller's (`not_found`)",
        413: "Request body too large (`payload_too_large`)",
        422: "Invalid request (`validation_error`)",
    }.items()
}

_STATUS_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    428: "precondition_required",
}


DOMAIN_STATUS: dict[str, int] = {
    "not_found": 404,
    "validation_error": 422,
    "invalid_state": 409,
    "customer_required": 409,
    "order_not_invoiceable": 409,
    "order_not_current": 409,
    "version_conflict": 412,
    "numbering_busy": 503,
}
"""HTTP status of each domain error code; a code not listed is a 409."""


def api_error(error: DomainError) -> ApiError:
    return ApiError(DOMAIN_STATUS.get(error.code, 409), error.code, error.message)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status)


class BodySizeLimit:
    """Refuses request bodies above a limit before they reach a route: on the declared
    `Content-Length`, and for a body without one (chunked) by reading it here, up to the limit,
    so that every endpoint answers 413 alike, whether or not it reads a body."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.limit:
                await _too_large(self.limit)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # HTTP/1.1: no length, no encoding, no body
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _too_large(self.limit)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for a disconnect, as ASGI does
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


MAX_ID_CHARS = 128
"""Longest path segment or query value any endpoint accepts (ids are shorter still)."""


def _printable(value: str) -> bool:
    # ASCII and printable: space to "~", checked in C (this runs on every request).
    return len(value) <= MAX_ID_CHARS and value.isascii() and value.isprintable()


class PrintableIds:
    """Every path segment and query value is at most 128 printable ASCII characters. Anything
    else (a NUL, a control character, a non-ASCII character) never reaches a route or the
    database: a path gets 404 `not_found`, a query 422 `validation_error`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if not all(_printable(segment) for segment in scope["path"].split("/")):
                await error_response(404, "not_found", "no such resource")(scope, receive, send)
                return
            query = scope.get("query_string", b"").decode("latin-1")
            for name, value in parse_qsl(query, keep_blank_values=True):
                if not (_printable(name) and _printable(value)):
                    await error_response(
                        422,
                        "validation_error",
                        f"query parameter {name[:40]!r}: at most {MAX_ID_CHARS} printable "
                        "ASCII characters",
                    )(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class Observe:
    """Correlation id and latency histogram per request, as plain ASGI middleware: Starlette's
    BaseHTTPMiddleware (`@app.middleware("http")`) costs a task and memory streams per request
    and showed in the services' profiles."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-correlation-id")
        token = correlation_id.set(given.decode("latin-1") if given else str(uuid.uuid4()))
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            correlation_id.reset(token)
            route = scope.get("route")  # set by the router on this same scope
            HTTP_REQUESTS.labels(
                scope["method"], getattr(route, "path", "unmatched"), str(status)
            ).observe(time.perf_counter() - started)


HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""CSP of the services' own HTML (the invoice document: one inline stylesheet, nothing else)."""
DOCS_POLICY = (
    "default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline'; "
    "style-src https://cdn.jsdelivr.net https://fonts.googleapis.com 'unsafe-inline'; "
    "font-src https://fonts.gstatic.com; img-src https://fastapi.tiangolo.com data:; "
    "connect-src 'self'; worker-src blob:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""CSP of FastAPI's /docs (Swagger UI) and /redoc pages: their CDN assets, their inline start-up
script, and the OpenAPI document from this service."""
DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeaders:
    """`X-Content-Type-Options: nosniff` on every response and a Content-Security-Policy on
    every HTML one (unless the route set its own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_POLICY if scope["path"].startswith(DOCS_PATHS) else HTML_POLICY

        async def secured_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                content_type = dict(headers).get(b"content-type", b"")
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if content_type.startswith(b"text/html") and (
                    b"content-security-policy" not in names
                ):
                    headers.append((b"content-security-policy", policy.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, secured_send)


def _too_large(limit: int) -> JSONResponse:
    return error_response(413, "payload_too_large", f"request body exceeds {limit} bytes")


def create_app(
    *,
    title: str,
    version: str,
    jwt_secret: str,
    max_token_ttl_seconds: int,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    readiness: Sequence[ReadinessCheck],
    description: str = "",
) -> FastAPI:
    """A FastAPI app with the contract's error bodies and /healthz, /readyz, /metrics."""
    app = FastAPI(title=title, version=version, description=description, lifespan=lifespan)
    app.state.jwt_secret = jwt_secret
    app.state.max_token_ttl_seconds = max_token_ttl_seconds
    app.add_middleware(PrintableIds)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(Observe)

    @app.exception_handler(ApiError)
    async def on_api_error(_: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message)

    @app.exception_handler(DomainError)
    async def on_domain_error(_: Request, error: DomainError) -> JSONResponse:
        translated = api_error(error)
        return error_response(translated.status, translated.code, translated.message)

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"
            for issue in error.errors()[:5]
        ]
        return error_response(422, "validation_error", "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400:
            # FastAPI's "error parsing the body" (not UTF-8...): invalid input, like any other.
            return error_response(422, "validation_error", f"request body: {error.detail}")
        code = _STATUS_CODES.get(error.status_code, "http_error")
        return error_response(error.status_code, code, str(error.detail))

    @app.exception_handler(Exception)
    async def on_unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=error)
        response = error_response(500, "internal_error", "internal error")
        # Starlette answers this one outside every middleware, SecurityHeaders included.
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: Kafka and database reachable",
        responses={
            503: {
                "description": "Kafka or the database does not answer (`not_ready`)",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                },
            }
        },
    )
    async def readyz() -> JSONResponse:
        try:
            await asyncio.wait_for(asyncio.gather(*(check() for check in readiness)), timeout=3)
        except Exception as error:
            return error_response(
                503, "not_ready", f"dependency unavailable: {type(error).__name__}"
            )
        return JSONResponse({"status": "ready"})

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
    )
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    _add_error_schema(app)
    tracing.instrument_app(app)  # tracing hook: SERVER spans when tracing is on
    return app


def _add_error_schema(app: FastAPI) -> None:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["ErrorBody"] = {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


async def serve(app: FastAPI, *, host: str, port: int) -> None:
    """Run the app until SIGTERM/SIGINT; the lifespan drains consumers and the outbox, and the
    process then exits 0 (a drained stop is a clean stop, for Kubernetes and for make down)."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises the caught signal after shutdown, which turns a finished drain
            # into exit code 143; keep its handlers but not that last step.
            original = {
                sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # httptools parses HTTP in C; h11 (pure Python) cost more per request (profiled).
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )
    await DrainingServer(config).serve()


def run_service(
    service: str, settings: ServiceSettings, build_app: Callable[[Any], FastAPI]
) -> None:
    """`python -m <service>`: JSON logs, then the app on real HTTP until SIGTERM."""
    from juniper_shared.logs import configure_logging

    configure_logging(service, settings.log_level)
    if warning := short_secret_warning(settings.auth_jwt_secret.get_secret_value()):
        log.warning(warning)
    tracing.setup(service)  # tracing hook: on only when the OTEL_* variables ask for it
    # uvloop: the event loop itself was the largest self-time in the services' profiles
    # (asyncio's selector loop in pure Python); uvloop runs the same code on libuv.
    uvloop.run(serve(build_app(settings), host=settings.http_host, port=settings.http_port))

"""The HTTP face every service shares: contract error bodies, health, metrics, limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import uvloop
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from juniper_shared import tracing
from juniper_shared.asgi import (
    BodySizeLimit,
    Observe,
    PrintableIds,
    SecurityHeaders,
    error_response,
)
from juniper_shared.auth import short_secret_warning
from juniper_shared.errors import ApiError, DomainError, RetryLater
from juniper_shared.settings import ServiceSettings

log = logging.getLogger(__name__)

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


CONTRACT_STATUS: dict[str, int] = {
    "not_found": 404,
    "validation_error": 422,
    "invalid_state": 409,
    "version_conflict": 412,
}
"""HTTP status of the contract's own error codes. Any other code is a service's own conflict
(orders' `customer_required`, invoicing's `order_not_invoiceable`...): a 409."""


def api_error(error: DomainError) -> ApiError:
    return ApiError(CONTRACT_STATUS.get(error.code, 409), error.code, error.message)


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

    @app.exception_handler(RetryLater)
    async def on_retry_later(_: Request, error: RetryLater) -> JSONResponse:
        response = error_response(503, error.code, str(error))
        response.headers["Retry-After"] = "1"
        return response

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

"""The ASGI middleware every app runs (plain ASGI: Starlette's BaseHTTPMiddleware costs a task
per request), and the contract's error body they and the routes answer with."""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from juniper_shared.logs import correlation_id
from juniper_shared.metrics import HTTP_REQUESTS

MAX_BODY_BYTES = 256 * 1024
"""Largest request body any endpoint accepts (413 above)."""


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

"""Sign-in: the platform's session, or (development only) a demo seller's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console.entrypoints.pages import ConsoleDep, render

router = APIRouter()


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

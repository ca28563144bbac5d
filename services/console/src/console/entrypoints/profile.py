"""Profile settings: Buyer Access Requires Approval."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from console.entrypoints.pages import ConsoleDep, SellerDep, render

router = APIRouter()


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

"""The Orders page: the All Orders table, its status filter, search and paging."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from console.adapters.api import ApiProblem, Json
from console.entrypoints.pages import ID, Console, ConsoleDep, SellerDep, fingerprint, render
from console.entrypoints.session import Seller

router = APIRouter()

PAGE_SIZE = 20
SEARCH_PAGES = 5
"""A buyer search reads the newest SEARCH_PAGES x 100 orders (the API has no search)."""
STATUSES = ("pending", "approved", "rejected", "cancelled", "expired")


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

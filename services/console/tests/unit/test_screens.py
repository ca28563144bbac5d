"""The screens against fake APIs (httpx's MockTransport): what a seller sees when an API says
no, when a page is stale, when a service is down; what every write sends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from console.adapters.api import create_client
from console.adapters.invoicing import InvoicingApi
from console.adapters.notifications import NotificationsApi
from console.adapters.orders import OrdersApi
from console.adapters.payments import PaymentsApi
from console.bootstrap import build_app
from console.entrypoints.pages import Apis
from console.settings import ConsoleSettings
from juniper_shared.auth import issue_token

Handler = Callable[[httpx.Request], httpx.Response]
TOKEN = issue_token("juniper-pottery", "dev-only-secret")


def order(**changes: Any) -> dict[str, Any]:
    address = {"name": "Maple & Co", "line1": "12 Harbour St", "city": "Portland", "country": "US"}
    return {
        "order_id": "ord-1",
        "status": "pending",
        "buyer": {"id": "b-1", "name": "Ada", "email": "ada@example.com", "company": "Maple"},
        "customer_id": None,
        "placed_at": "2026-12-06T04:00:00+00:00",
        "currency": "USD",
        "total": "66.00",
        "subtotal": "66.00",
        "shipping_fee": "0.00",
        "invoice": None,
        "payment_status": "none",
        "split_from": None,
        "split_into": [],
        "items": [
            {
                "line_id": "l-1",
                "sku": "MUG-1",
                "name": "Stoneware mug",
                "unit_price": "12.50",
                "quantity": 4,
                "line_total": "50.00",
            }
        ],
        "shipping_address": address,
        "billing_address": address,
        "payment_method": {"type": "credit_card", "brand": "visa", "last4": "4242"},
        "rejection": None,
        "notes": None,
        "history": [{"at": "2026-12-06T04:00:00+00:00", "type": "received"}],
        "version": 3,
        **changes,
    }


def error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


class FakeApis:
    """Answers like the four services; `writes` records every write the console sent."""

    def __init__(self) -> None:
        self.writes: list[httpx.Request] = []
        self.accept: httpx.Response = httpx.Response(200, json=order(status="approved"))
        self.notifications_down = False

    def orders(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/orders":
            return self.listing(request)
        if request.method == "GET" and request.url.path == "/v1/orders/ord-1":
            return httpx.Response(200, json=order())
        if request.url.path == "/v1/orders/ord-1/accept":
            self.writes.append(request)
            return self.accept
        return error(404, "not_found", "no such thing")

    def listing(self, request: httpx.Request) -> httpx.Response:
        """45 orders, newest first; ord-44 is from the buyer Zed."""
        page, size = int(request.url.params["page"]), int(request.url.params["page_size"])
        rows = []
        for number in reversed(range(45)):
            buyer = {
                "id": "b",
                "name": "Zed" if number == 44 else "Ada",
                "email": "",
                "company": "",
            }
            rows.append(order(order_id=f"ord-{number}", buyer=buyer))
        chunk = rows[(page - 1) * size : page * size]
        return httpx.Response(200, json={"items": chunk, "total_count": 45, "page": page})

    def invoicing(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/invoices/inv-1/document":
            assert request.headers["Authorization"] == f"Bearer {TOKEN}"
            return httpx.Response(
                200,
                text="<html><body>Invoice INV-000001</body></html>",
                headers={"content-type": "text/html"},
            )
        return httpx.Response(200, json={"items": []})

    def payments(self, request: httpx.Request) -> httpx.Response:
        return error(404, "not_found", "no payment")

    def notifications(self, request: httpx.Request) -> httpx.Response:
        if self.notifications_down:
            return error(503, "not_ready", "down")
        return httpx.Response(200, json={"items": []})

    def apis(self) -> Apis:
        def client(name: str, handler: Handler) -> httpx.AsyncClient:
            return create_client(f"http://{name}", 5, transport=httpx.MockTransport(handler))

        return Apis(
            orders=OrdersApi("orders", client("orders", self.orders)),
            invoicing=InvoicingApi("invoicing", client("invoicing", self.invoicing)),
            payments=PaymentsApi("payments", client("payments", self.payments)),
            notifications=NotificationsApi(
                "notifications", client("notifications", self.notifications)
            ),
        )


@pytest.fixture
def fake() -> FakeApis:
    return FakeApis()


@pytest.fixture
async def browser(fake: FakeApis) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(ConsoleSettings(console_secure_cookies=False), fake.apis())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console"
    ) as client:
        client.cookies.set("jm_seller_token", TOKEN)
        yield client


async def test_without_a_token_the_seller_is_sent_to_sign_in(browser: httpx.AsyncClient) -> None:
    browser.cookies.clear()
    answer = await browser.get("/orders/ord-1")
    assert (answer.status_code, answer.headers["location"]) == (303, "/sign-in")


async def test_the_development_sign_in_is_off_unless_asked(browser: httpx.AsyncClient) -> None:
    page = await browser.get("/sign-in")
    assert "Sign in through the JuniperMarket platform" in page.text
    assert "Sign in as" not in page.text
    assert (
        await browser.post("/sign-in", data={"seller_id": "juniper-pottery"})
    ).status_code == 404


async def test_an_api_refusal_is_shown_beside_the_button(
    browser: httpx.AsyncClient, fake: FakeApis
) -> None:
    fake.accept = error(409, "invalid_state", "only a pending order can be accepted")
    page = await browser.post("/orders/ord-1/accept", data={"version": "3"})
    assert page.status_code == 409
    assert (
        '<p id="accept-error" class="error" role="alert">only a pending order can be accepted</p>'
        in page.text
    )


async def test_a_stale_page_shows_the_order_as_it_is_now(
    browser: httpx.AsyncClient, fake: FakeApis
) -> None:
    fake.accept = error(412, "version_conflict", "the order is at version 4")
    page = await browser.post("/orders/ord-1/accept", data={"version": "3"})
    assert page.status_code == 412
    assert "This order changed since the page was shown" in page.text
    assert 'name="version" value="3"' in page.text  # the order as the API has it now


async def test_every_write_carries_if_match_and_one_key_per_intention(
    browser: httpx.AsyncClient, fake: FakeApis
) -> None:
    for _ in range(2):  # a double click
        assert (
            await browser.post("/orders/ord-1/accept", data={"version": "3"})
        ).status_code == 303
    first, second = fake.writes
    assert first.headers["If-Match"] == '"3"'
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    await browser.post(
        "/orders/ord-1/accept",
        data={
            "version": "3",
            "customer": "create",
            "customer_name": "M",
            "customer_email": "m@x.io",
        },
    )
    assert fake.writes[-1].headers["Idempotency-Key"] != first.headers["Idempotency-Key"]
    assert json.loads(fake.writes[-1].content) == {
        "customer": {"create": {"name": "M", "email": "m@x.io"}}
    }


async def test_a_form_posted_from_another_site_is_refused(
    browser: httpx.AsyncClient, fake: FakeApis
) -> None:
    answer = await browser.post(
        "/orders/ord-1/accept", data={"version": "3"}, headers={"Origin": "https://evil.example"}
    )
    assert answer.status_code == 403
    assert not fake.writes


async def test_every_screen_says_what_it_may_load(browser: httpx.AsyncClient) -> None:
    policy = (await browser.get("/orders/ord-1")).headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy


async def test_a_service_down_leaves_the_rest_of_the_order_readable(
    browser: httpx.AsyncClient, fake: FakeApis
) -> None:
    fake.notifications_down = True
    page = await browser.get("/orders/ord-1")
    assert page.status_code == 200
    assert "Not answering right now: the notifications service" in page.text
    assert "Stoneware mug" in page.text


async def test_a_page_that_does_not_exist_says_so_in_html(browser: httpx.AsyncClient) -> None:
    page = await browser.get("/nowhere")
    assert page.status_code == 404
    assert "There is no such page." in page.text
    assert page.headers["content-type"].startswith("text/html")


async def test_the_invoice_link_opens_the_document_with_no_script_allowed(
    browser: httpx.AsyncClient,
) -> None:
    document = await browser.get("/orders/ord-1/invoices/inv-1/document")
    assert document.status_code == 200
    assert "Invoice INV-000001" in document.text
    policy = document.headers["Content-Security-Policy"]
    assert "sandbox" in policy and "script-src" not in policy


async def test_the_all_orders_table_pages_and_searches(browser: httpx.AsyncClient) -> None:
    first = await browser.get("/orders")
    assert "Page 1 of 3" in first.text and "Next page" in first.text
    assert first.text.index("ord-44") < first.text.index("ord-43")  # newest first
    last = await browser.get("/orders?page=3")
    assert "Page 3 of 3" in last.text and "ord-0<" in last.text and "Next page" not in last.text
    found = await browser.get("/orders?q=zed")
    assert "1 order matching" in found.text and "ord-44" in found.text
    assert "ord-43" not in found.text


async def test_in_production_a_seller_without_a_session_goes_to_the_platform_login(
    fake: FakeApis,
) -> None:
    settings = ConsoleSettings(console_sign_in_url="https://login.junipermarket.example/")
    app = build_app(settings, fake.apis())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console"
    ) as anonymous:
        assert (await anonymous.get("/orders")).headers["location"] == "/sign-in"
        login = await anonymous.get("/sign-in")
        assert login.headers["location"] == "https://login.junipermarket.example/"
        assert (await anonymous.get("/metrics")).status_code == 200

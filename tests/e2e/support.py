"""The whole system as separate processes, and a seller, a checkout and a buyer's inbox to drive it.

Everything here talks to the services the way their users do: HTTP with a seller's JWT, orders
placed on Kafka as checkout places them, emails read from a real SMTP server.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from juniper_testkit import bearer, placed_order, wait_until

# The processes live in tests/support (shared with the fault suite and the benchmark);
# re-exported so the stories import everything from here.
from ..support.stack import JWT_SECRET, WAIT
from ..support.stack import Email as Email
from ..support.stack import Inbox as Inbox
from ..support.stack import Process as Process
from ..support.stack import Stack as Stack

SHIPPING = {
    "carrier": "UPS",
    "tracking_number": "1Z999AA10123456784",
    "shipped_at": datetime.now(UTC).date().isoformat(),
    "shipping_cost": "15.00",
}


# --- people ---------------------------------------------------------------------------------


def new_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Buyer:
    id: str
    name: str
    email: str
    company: str

    @classmethod
    def new(cls, name: str = "Ada Buyer", company: str = "Maple & Co") -> Buyer:
        buyer_id = new_id("buyer")
        return cls(buyer_id, name, f"{buyer_id}@example.com", company)

    def as_contract(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "email": self.email, "company": self.company}


def card(token: str = "tok_visa", last4: str = "4242") -> dict[str, str]:
    return {"type": "credit_card", "card_token": token, "brand": "visa", "last4": last4}


def item(sku: str, unit_price: str, quantity: int, name: str | None = None) -> dict[str, Any]:
    return {"sku": sku, "name": name or sku.title(), "unit_price": unit_price, "quantity": quantity}


class Seller:
    """One seller's portal session: every call is the HTTP request the admin portal makes."""

    def __init__(self, stack: Stack, http: httpx.AsyncClient, seller_id: str | None = None):
        self.stack = stack
        self.http = http
        self.seller_id = seller_id or new_id("seller")
        self.name = "Juniper Pottery"
        self.headers = bearer(self.seller_id, JWT_SECRET)

    # --- checkout (on Kafka) and the order pages ---------------------------------------------

    async def receives_order(
        self,
        buyer: Buyer,
        *,
        items: list[dict[str, Any]] | None = None,
        payment_method: dict[str, Any] | None = None,
        status: str = "pending",
        **extra: Any,
    ) -> dict[str, Any]:
        """A buyer places an order with this seller; waits until the seller sees it."""
        overrides: dict[str, Any] = {
            "seller_id": self.seller_id,
            "seller_name": self.name,
            "buyer": buyer.as_contract(),
            "payment_method": payment_method or card(),
            **extra,
        }
        if items is not None:
            overrides["items"] = items
        order = placed_order(**overrides)
        await self.stack.place(order)
        return await self.order_once(order.data.order_id, status=status)

    async def order_once(self, order_id: str, *, status: str) -> dict[str, Any]:
        """The order's details once it reaches `status` (bounded wait)."""

        async def current() -> str | None:
            response = await self.get("orders", f"/v1/orders/{order_id}")
            return response.json()["status"] if response.status_code == 200 else None

        await wait_until(current, equals=status, timeout=WAIT, interval=0.2)
        return await self.ok("orders", "GET", f"/v1/orders/{order_id}")

    async def row(self, order_id: str) -> dict[str, Any]:
        """The order's row on the All Orders table."""
        listing = await self.ok("orders", "GET", "/v1/orders", params={"page_size": 100})
        rows = [row for row in listing["items"] if row["order_id"] == order_id]
        assert len(rows) == 1, f"{order_id} is on the All Orders table {len(rows)} times"
        row: dict[str, Any] = rows[0]
        return row

    async def row_once(self, order_id: str, **expected: Any) -> dict[str, Any]:
        """The All Orders row once its fields show `expected` (bounded wait)."""

        async def shown() -> dict[str, Any]:
            row = await self.row(order_id)
            return {key: row[key] for key in expected}

        await wait_until(shown, equals=expected, timeout=WAIT, interval=0.2)
        return await self.row(order_id)

    # --- the buttons ------------------------------------------------------------------------

    async def accept(self, order_id: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.post("orders", f"/v1/orders/{order_id}/accept", body)

    async def reject(self, order_id: str, reason: str, message: str) -> httpx.Response:
        body = {"reason": reason, "message": message}
        return await self.post("orders", f"/v1/orders/{order_id}/reject", body)

    async def split(self, order_id: str, line_ids: list[str]) -> httpx.Response:
        return await self.post("orders", f"/v1/orders/{order_id}/split", {"line_ids": line_ids})

    async def change_quantities(
        self, order_id: str, quantities: Mapping[str, int]
    ) -> httpx.Response:
        body = {"items": [{"line_id": line, "quantity": qty} for line, qty in quantities.items()]}
        return await self.http.patch(
            self.stack.url("orders") + f"/v1/orders/{order_id}/items",
            json=body,
            headers=self.headers,
        )

    async def remove_items(self, order_id: str, line_ids: list[str]) -> httpx.Response:
        return await self.post(
            "orders", f"/v1/orders/{order_id}/items/remove", {"line_ids": line_ids}
        )

    async def cancel(self, order_id: str, message: str) -> httpx.Response:
        return await self.post("orders", f"/v1/orders/{order_id}/cancel", {"message": message})

    async def set_gated(self, gated: bool) -> None:
        response = await self.http.put(
            self.stack.url("orders") + "/v1/seller/settings",
            json={"buyer_access_requires_approval": gated},
            headers=self.headers,
        )
        assert response.status_code == 200, response.text

    async def create_customer(
        self, name: str, email_address: str, buyer_ids: list[str] | None = None
    ) -> dict[str, Any]:
        body = {"name": name, "email": email_address, "buyer_ids": buyer_ids or []}
        response = await self.post("orders", "/v1/customers", body)
        assert response.status_code == 201, response.text
        customer: dict[str, Any] = response.json()
        return customer

    async def knows(self, buyer: Buyer) -> dict[str, Any]:
        """The buyer already has a relationship with the seller (a customer linked to them)."""
        return await self.create_customer(buyer.company, buyer.email, [buyer.id])

    # --- invoicing and payments ---------------------------------------------------------------

    async def preview(
        self, order_id: str, shipping: Mapping[str, str] = SHIPPING
    ) -> dict[str, Any]:
        """Create Invoice on the shipping tab: the draft, once invoicing has the approved order.

        Invoicing learns of the approval from `orders.events`, so a preview sent in the same
        instant may still find the order unknown or pending; the seller would press again.
        """
        last: list[httpx.Response] = []

        async def drafted() -> int:
            response = await self.post(
                "invoicing", f"/v1/orders/{order_id}/invoice/preview", {"shipping": dict(shipping)}
            )
            last[:] = [response]
            return response.status_code

        try:
            await wait_until(drafted, equals=200, timeout=WAIT, interval=0.3)
        except AssertionError:
            raise AssertionError(f"no invoice preview for {order_id}: {last[0].text}") from None
        draft: dict[str, Any] = last[0].json()
        return draft

    async def confirm(self, invoice_id: str) -> dict[str, Any]:
        response = await self.post("invoicing", f"/v1/invoices/{invoice_id}/confirm")
        assert response.status_code == 200, response.text
        confirmed: dict[str, Any] = response.json()
        return confirmed

    async def invoice_once(self, invoice_id: str, status: str) -> dict[str, Any]:
        async def current() -> str:
            return str((await self.ok("invoicing", "GET", f"/v1/invoices/{invoice_id}"))["status"])

        await wait_until(current, equals=status, timeout=WAIT, interval=0.2)
        return await self.ok("invoicing", "GET", f"/v1/invoices/{invoice_id}")

    async def payment(self, invoice_id: str) -> dict[str, Any]:
        return await self.ok("payments", "GET", "/v1/payments", params={"invoice_id": invoice_id})

    async def retry_payment(self, invoice_id: str) -> httpx.Response:
        return await self.post("payments", f"/v1/invoices/{invoice_id}/payment/retry")

    async def invoice_and_confirm(self, order_id: str) -> dict[str, Any]:
        draft = await self.preview(order_id)
        return await self.confirm(draft["invoice_id"])

    # --- plumbing ---------------------------------------------------------------------------

    async def get(self, service: str, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(
            self.stack.url(service) + path, params=params or None, headers=self.headers
        )

    async def post(
        self, service: str, path: str, body: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        return await self.http.post(
            self.stack.url(service) + path,
            json=dict(body) if body is not None else None,
            headers=self.headers,
        )

    async def ok(
        self, service: str, method: str, path: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self.http.request(
            method, self.stack.url(service) + path, params=params, headers=self.headers
        )
        assert response.status_code == 200, f"{method} {path}: {response.text}"
        body: dict[str, Any] = response.json()
        return body


def error_code(response: httpx.Response) -> tuple[int, str]:
    """A contract error as the portal reads it: status and `error.code`."""
    return response.status_code, response.json()["error"]["code"]

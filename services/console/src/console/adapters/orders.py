"""The orders API: the All Orders table, order details, the seller's decisions, customers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from console.adapters.api import Api, Json


def _order(order_id: str) -> str:
    return f"/v1/orders/{quote(order_id, safe='')}"


class OrdersApi(Api):
    async def page(self, *, token: str, status: str | None, page: int, page_size: int) -> Json:
        params: dict[str, str | int] = {"page": page, "page_size": page_size}
        if status:
            params["status"] = status
        listing: Json = await self.get("/v1/orders", token=token, params=params)
        return listing

    async def order(self, order_id: str, *, token: str) -> Json:
        order: Json = await self.get(_order(order_id), token=token)
        return order

    async def act(
        self,
        order_id: str,
        action: str,
        *,
        token: str,
        body: Json | None,
        version: int | None,
        key: str,
        method: str = "POST",
    ) -> Json:
        """accept, reject, split, items (PATCH), items/remove, cancel: If-Match and a key."""
        answer = await self.call(
            method,
            f"{_order(order_id)}/{action}",
            token=token,
            json=body,
            if_match=version,
            idempotency_key=key,
        )
        result: Json = answer.body
        return result

    async def settings(self, *, token: str) -> Json:
        settings: Json = await self.get("/v1/seller/settings", token=token)
        return settings

    async def save_settings(self, *, token: str, requires_approval: bool) -> Json:
        answer = await self.call(
            "PUT",
            "/v1/seller/settings",
            token=token,
            json={"buyer_access_requires_approval": requires_approval},
        )
        settings: Json = answer.body
        return settings

    async def customer(self, customer_id: str, *, token: str) -> Json:
        customer: Json = await self.get(f"/v1/customers/{quote(customer_id, safe='')}", token=token)
        return customer

    async def customers(self, *, token: str) -> list[Json]:
        listing: dict[str, Any] = await self.get(
            "/v1/customers", token=token, params={"page_size": 500}
        )
        customers: list[Json] = listing["items"]
        return customers

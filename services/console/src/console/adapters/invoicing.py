"""The invoicing API: the invoice preview, confirmation, and an order's invoices."""

from __future__ import annotations

from urllib.parse import quote

from console.adapters.api import Api, Json


class InvoicingApi(Api):
    async def preview(
        self, order_id: str, *, token: str, shipping: Json, order_version: int, key: str
    ) -> Json:
        answer = await self.call(
            "POST",
            f"/v1/orders/{quote(order_id, safe='')}/invoice/preview",
            token=token,
            json={"shipping": shipping, "order_version": order_version},
            idempotency_key=key,
        )
        draft: Json = answer.body
        return draft

    async def confirm(self, invoice_id: str, *, token: str, key: str) -> Json:
        answer = await self.call(
            "POST",
            f"/v1/invoices/{quote(invoice_id, safe='')}/confirm",
            token=token,
            idempotency_key=key,
        )
        confirmed: Json = answer.body
        return confirmed

    async def invoice(self, invoice_id: str, *, token: str) -> Json:
        invoice: Json = await self.get(f"/v1/invoices/{quote(invoice_id, safe='')}", token=token)
        return invoice

    async def document(self, invoice_id: str, *, token: str, pdf: bool) -> tuple[bytes, str]:
        """The printable invoice (HTML, or PDF) and its content type."""
        answer = await self.call(
            "GET",
            f"/v1/invoices/{quote(invoice_id, safe='')}/document",
            token=token,
            accept="application/pdf" if pdf else "text/html",
        )
        content = answer.body if isinstance(answer.body, bytes) else b""
        return content, answer.headers.get("content-type", "application/octet-stream")

    async def for_order(self, order_id: str, *, token: str) -> list[Json]:
        listing: Json = await self.get("/v1/invoices", token=token, params={"order_id": order_id})
        invoices: list[Json] = listing["items"]
        return invoices

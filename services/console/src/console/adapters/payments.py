"""The payments API: an invoice's payment attempts, and Retry payment."""

from __future__ import annotations

from urllib.parse import quote

from console.adapters.api import Api, ApiProblem, Json


class PaymentsApi(Api):
    async def payment(self, invoice_id: str, *, token: str) -> Json | None:
        """The invoice's payment, or None when it has none (not a card, not charged yet)."""
        try:
            payment: Json = await self.get(
                "/v1/payments", token=token, params={"invoice_id": invoice_id}
            )
        except ApiProblem as problem:
            if problem.status == 404:
                return None
            raise
        return payment

    async def retry(self, invoice_id: str, *, token: str, key: str) -> Json:
        answer = await self.call(
            "POST",
            f"/v1/invoices/{quote(invoice_id, safe='')}/payment/retry",
            token=token,
            idempotency_key=key,
        )
        accepted: Json = answer.body
        return accepted

"""The notifications API: the emails the buyer was sent about an order."""

from __future__ import annotations

from console.adapters.api import Api, Json


class NotificationsApi(Api):
    async def emails(self, order_id: str, *, token: str) -> list[Json]:
        listing: Json = await self.get(
            "/v1/notifications", token=token, params={"order_id": order_id}
        )
        emails: list[Json] = listing["items"]
        return emails

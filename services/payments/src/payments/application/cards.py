"""The card vault, kept from order events: the token of each order placed by card, the card an
order split off another pays with, and nothing of an order that expired."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from juniper_shared.contracts.common import CardSummary, CreditCard
from juniper_shared.contracts.events import OrderExpired, OrderPlaced, OrderSplit

from payments.application.ports import CardVault, PlacedCard


@dataclass
class CardKeeping:
    vault: CardVault

    async def record_placed_cards(self, placed: Sequence[OrderPlaced]) -> None:
        """Keep the token of every order placed with a card; events carry brand and last4 only."""
        cards = [
            PlacedCard(
                order_id=event.data.order_id,
                seller_id=event.data.seller_id,
                card_token=event.data.payment_method.card_token,
                brand=event.data.payment_method.brand,
                last4=event.data.payment_method.last4,
            )
            for event in placed
            if isinstance(event.data.payment_method, CreditCard)
        ]
        await self.vault.add_placed(list({card.order_id: card for card in cards}.values()))

    async def record_splits(self, splits: Sequence[OrderSplit]) -> None:
        """An order split off another pays with the same card."""
        links = {
            event.data.new_order.order_id: (
                event.data.new_order.order_id,
                event.data.parent.order_id,
                event.data.parent.seller_id,
            )
            for event in splits
            if isinstance(event.data.parent.payment_method, CardSummary)
        }
        await self.vault.add_split(list(links.values()))

    async def forget_expired(self, expired: Sequence[OrderExpired]) -> None:
        """An expired order is never invoiced: its card is not kept. An order split off it
        earlier pays with that card, so the card stays while the order has such children."""
        by_seller: dict[str, list[str]] = {}
        for event in expired:
            if not event.data.split_into:
                by_seller.setdefault(event.seller_id, []).append(event.data.order_id)
        for seller_id, order_ids in by_seller.items():
            await self.vault.forget(seller_id, order_ids)

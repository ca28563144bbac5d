"""Card tokens at rest on FerretDB: sealed, never in the clear; charging still works; key rotation."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from cryptography.fernet import Fernet
from payments.adapters.mongo import CARD_VAULT, MongoCardVault
from payments.adapters.sealing import CardSeal
from payments.application.ports import PlacedCard
from pymongo import AsyncMongoClient

from .conftest import PaymentsUnderTest

pytestmark = pytest.mark.integration


async def test_the_vault_stores_no_card_token_in_the_clear_and_the_card_is_charged(
    payments_service: PaymentsUnderTest, mongo_client: AsyncMongoClient[dict[str, Any]]
) -> None:
    me = f"seller-{uuid.uuid4().hex[:8]}"
    order = await payments_service.place(me, "tok_visa")
    invoice = await payments_service.issue(order)

    await payments_service.wait_for_status(me, invoice.data.invoice_id, "succeeded")

    database = mongo_client[payments_service.settings.mongodb_database]
    stored = await database[CARD_VAULT].find_one({"_id": order.data.order_id})
    assert stored is not None
    assert "tok_visa" not in str(stored)
    assert "card_token" not in stored
    assert (stored["brand"], stored["last4"]) == ("visa", "4242")
    charges = await payments_service.charges(invoice.data.invoice_id)
    assert [c["status"] for c in charges] == ["succeeded"]


async def test_rotating_the_key_keeps_every_card_and_reseals_it_under_the_new_key(
    mongo_client: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    db = mongo_client[database_name]
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    await MongoCardVault(db, CardSeal(old)).add_placed(
        [
            PlacedCard(
                order_id="o-sealed",
                seller_id="s",
                card_token="tok_visa",
                brand="visa",
                last4="4242",
            )
        ]
    )
    # Stored in the clear by a version that did not seal tokens.
    await db[CARD_VAULT].insert_one(
        {
            "_id": "o-clear",
            "seller_id": "s",
            "card_token": "tok_visa",
            "brand": "visa",
            "last4": "1",
        }
    )

    rotated = MongoCardVault(db, CardSeal(new, [old]))
    for order_id in ("o-sealed", "o-clear"):
        card = await rotated.card_for(order_id)
        assert card is not None
        assert card.card_token == "tok_visa"
    assert await rotated.reseal() == 2
    assert await rotated.reseal() == 0  # every start runs it; the second finds nothing

    only_new = MongoCardVault(db, CardSeal(new))  # the old key can now be dropped
    for order_id in ("o-sealed", "o-clear"):
        card = await only_new.card_for(order_id)
        assert card is not None
        assert card.card_token == "tok_visa"
    assert "tok_visa" not in str([document async for document in db[CARD_VAULT].find({})])

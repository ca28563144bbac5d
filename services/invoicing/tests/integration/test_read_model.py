"""The read model of invoiceable orders follows orders.events, out of order and twice."""

from __future__ import annotations

from typing import Any

import pytest
from invoicing.adapters.mongo import MongoOrderBook
from invoicing.application.events import order_from_snapshot
from invoicing.domain.order import InvoiceableOrder
from juniper_shared.contracts.events import OrderExpired, OrderExpiredData
from pymongo import AsyncMongoClient

from .support import Invoicing, accepted, cancelled, snapshot, split, updated

pytestmark = pytest.mark.integration


async def test_the_newest_order_version_wins_whatever_the_order_of_events(
    service: Invoicing, unique: str
) -> None:
    order_id, marker = f"ord-{unique}", f"mark-{unique}"
    v2 = snapshot(order_id, version=2, items=[("MUG-1", "Mug", "12.50", 4)])
    v3 = snapshot(order_id, version=3, items=[("MUG-1", "Mug", "12.50", 5)])
    v4 = snapshot(order_id, version=4, items=[("MUG-1", "Mug", "12.50", 7)])
    # One key keeps them in one partition: the marker is read only after the stale ones.
    await service.publish_orders(
        [accepted(v2), updated(v4), updated(v3), updated(v4), accepted(snapshot(marker))],
        key=order_id,
    )
    await service.until_previewable(marker)
    draft = (await service.preview(order_id)).json()
    assert [line["quantity"] for line in draft["lines"]] == [7]
    assert (draft["subtotal"], draft["shipping_cost"], draft["total"]) == (
        "87.50",
        "15.00",
        "102.50",
    )

    v5 = snapshot(order_id, version=5, status="cancelled")
    second_marker = f"mark2-{unique}"
    await service.publish_orders(
        [cancelled(v5), updated(v4), accepted(snapshot(second_marker))], key=order_id
    )
    await service.until_previewable(second_marker)
    refused = await service.preview(order_id)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "order_not_invoiceable"


async def test_a_split_updates_the_parent_and_adds_the_new_pending_order(
    service: Invoicing, unique: str
) -> None:
    parent_id, child_id = f"ord-{unique}", f"ord-{unique}-2"
    two_lines = snapshot(parent_id, version=2)
    await service.publish_orders([accepted(two_lines)])
    assert len((await service.until_previewable(parent_id))["lines"]) == 2

    parent = snapshot(parent_id, version=3, items=[("MUG-1", "Stoneware mug", "12.50", 4)])
    child = snapshot(
        child_id,
        version=1,
        status="pending",
        items=[("TEA-2", "Green tea tin", "8.00", 2)],
        split_from=parent_id,
    )
    await service.publish_orders(
        [
            split(parent, child),
            accepted(
                snapshot(
                    child_id,
                    version=2,
                    items=[("TEA-2", "Green tea tin", "8.00", 2)],
                    split_from=parent_id,
                )
            ),
        ],
        key=parent_id,
    )
    child_draft = await service.until_previewable(child_id)
    assert [line["sku"] for line in child_draft["lines"]] == ["TEA-2"]
    parent_draft = (await service.preview(parent_id)).json()
    assert [line["sku"] for line in parent_draft["lines"]] == ["MUG-1"]


async def test_a_pending_order_is_not_invoiceable_until_accepted(
    service: Invoicing, unique: str
) -> None:
    order_id = f"ord-{unique}"
    await service.publish_orders(
        [
            updated(snapshot(order_id, version=1, status="pending")),
            accepted(snapshot(f"m-{unique}")),
        ],
        key=order_id,
    )
    await service.until_previewable(f"m-{unique}")
    refused = await service.preview(order_id)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "order_not_invoiceable")


async def test_an_expired_order_is_never_invoiceable(service: Invoicing, unique: str) -> None:
    order_id = f"ord-{unique}"
    order = snapshot(order_id, version=2, status="expired")
    await service.publish_orders(
        [
            updated(snapshot(order_id, version=1, status="pending")),
            OrderExpired(
                producer="orders",
                seller_id=order.seller_id,
                data=OrderExpiredData(order=order, expires_at=order.placed_at),
            ),
            accepted(snapshot(f"m-{unique}")),
        ],
        key=order_id,
    )
    await service.until_previewable(f"m-{unique}")
    refused = await service.preview(order_id)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "order_not_invoiceable")


async def test_each_snapshot_is_stored_only_over_an_older_version(
    mongo_client: AsyncMongoClient[dict[str, Any]], database_name: str, unique: str
) -> None:
    book = MongoOrderBook(mongo_client[database_name])
    order_id, other_id = f"ord-{unique}", f"other-{unique}"

    def version(number: int, order: str = order_id) -> InvoiceableOrder:
        return order_from_snapshot(snapshot(order, version=number))

    async def stored_version() -> int | None:
        order = await book.get(order_id)
        return order.version if order else None

    assert await book.apply([version(2)]) == 1  # its first snapshot never came here
    assert await book.apply([version(1)]) == 0  # the first, late: refused
    assert await book.apply([version(3)]) == 1
    assert await book.apply([version(2)]) == 0  # stale
    assert await stored_version() == 3
    assert await book.apply([version(1, other_id), version(5), version(4)]) == 2
    assert await stored_version() == 5
    assert (await book.get(other_id)) is not None

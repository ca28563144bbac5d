"""Two replicas of invoicing on one database: each starts a change from the copy of the invoice
(and the seller's counter) it stored last; these tests outdate that copy on purpose."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from .conftest import running_invoicing
from .support import Invoicing, accepted, snapshot

pytestmark = pytest.mark.integration


@pytest.fixture
async def other_replica(infra: Any, database_name: str, unique: str) -> AsyncIterator[Invoicing]:
    async with running_invoicing(infra, database_name, unique) as invoicing:
        yield invoicing


async def test_confirm_issues_the_draft_as_last_previewed_on_the_other_replica(
    service: Invoicing, other_replica: Invoicing, unique: str
) -> None:
    order_id = f"ord-{unique}"
    await service.publish_orders([accepted(snapshot(order_id))])
    draft = await service.until_previewable(order_id)  # this replica holds the UPS draft
    redrafted = await other_replica.preview(order_id, carrier="FedEx", shipping_cost="20.00")
    assert redrafted.status_code == 200

    confirmed = await service.confirm(draft["invoice_id"])

    assert confirmed.status_code == 200, confirmed.text
    assert (confirmed.json()["status"], confirmed.json()["number"]) == ("issued", "INV-000001")
    issued: dict[str, Any] = (await service.invoice(draft["invoice_id"])).json()
    assert (issued["number"], issued["shipping"]["carrier"], issued["total"]) == (
        "INV-000001",
        "FedEx",
        "86.00",
    )


async def test_numbers_stay_gapless_when_replicas_take_turns(
    service: Invoicing, other_replica: Invoicing, unique: str
) -> None:
    """Each replica's copy of the seller's counter is outdated by the other's confirm."""
    seller = f"seller-{unique}"
    replicas = [service, other_replica, service, other_replica, service]
    numbers = []
    for n, replica in enumerate(replicas):
        order_id = f"ord-{unique}-{n}"
        await service.publish_orders([accepted(snapshot(order_id, seller_id=seller))])
        draft = await replica.until_previewable(order_id, seller_id=seller)
        confirmed = await replica.confirm(draft["invoice_id"], seller_id=seller)
        assert confirmed.status_code == 200, confirmed.text
        numbers.append(confirmed.json()["number"])
    assert numbers == [f"INV-{n:06d}" for n in range(1, 6)]


async def test_a_replica_that_never_saw_the_invoice_refuses_to_redraft_it_once_issued(
    service: Invoicing, other_replica: Invoicing, unique: str
) -> None:
    """A preview starts as the order's first draft unless this process holds a copy; the one
    stored (here issued on the other replica) decides."""
    order_id = f"ord-{unique}"
    await service.publish_orders([accepted(snapshot(order_id))])
    draft = await service.until_previewable(order_id)
    assert (await service.confirm(draft["invoice_id"])).status_code == 200

    late = await other_replica.preview(order_id, carrier="FedEx", shipping_cost="20.00")

    assert (late.status_code, late.json()["error"]["code"]) == (409, "order_not_invoiceable")
    issued: dict[str, Any] = (await service.invoice(draft["invoice_id"])).json()
    assert (issued["status"], issued["number"], issued["shipping"]["carrier"]) == (
        "issued",
        "INV-000001",
        draft["shipping"]["carrier"],
    )

"""Orders the seller never answers expire, and the buyer is told once, however many orders
replicas sweep. Separate processes, real Kafka, FerretDB and SMTP; the clock is real, so the
orders are placed in the past."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from juniper_testkit import free_port, placed_order, wait_until
from pymongo import AsyncMongoClient

from .support import WAIT, Buyer, Process, Seller, card, error_code

pytestmark = pytest.mark.integration

SUBJECT = "Your order {order_id} from Juniper Pottery was not accepted in time"


async def test_orders_past_the_sellers_window_expire_once_with_two_orders_replicas(
    seller: Seller, http: httpx.AsyncClient
) -> None:
    stack = seller.stack
    second = _replica_of(stack.processes["orders"], "orders-2")
    second.start()
    try:
        await second.wait_ready(http, time.monotonic() + 90)
        response = await http.put(
            stack.url("orders") + "/v1/seller/settings",
            json={"buyer_access_requires_approval": False, "pending_order_expiry_days": 1},
            headers=seller.headers,
        )
        assert response.json()["pending_order_expiry_days"] == 1
        buyers = [Buyer.new(f"Buyer {n}") for n in range(4)]
        two_days_ago = (datetime.now(UTC) - timedelta(days=2)).isoformat()
        orders = [
            placed_order(
                seller_id=seller.seller_id,
                seller_name=seller.name,
                buyer=buyer.as_contract(),
                payment_method=card(),
                placed_at=two_days_ago,
            )
            for buyer in buyers
        ]
        for order in orders:
            await stack.place(order)

        async def expired() -> int:
            table = await seller.ok(
                "orders", "GET", "/v1/orders", params={"status": "expired", "page_size": 100}
            )
            return int(table["total_count"])

        await wait_until(expired, equals=len(orders), timeout=WAIT, interval=0.3)
        for buyer, order in zip(buyers, orders, strict=True):
            mail = await stack.inbox.wait_for(
                buyer.email, SUBJECT.format(order_id=order.data.order_id)
            )
            assert "was not accepted in time" in mail.text
        late = await seller.accept(orders[0].data.order_id)
        assert error_code(late) == (409, "invalid_state")
        await asyncio.sleep(3)  # three more sweeps of each replica: still one email each
        for buyer in buyers:
            assert len(stack.inbox.to(buyer.email)) == 1
        notes = await seller.ok(
            "notifications",
            "GET",
            "/v1/notifications",
            params={"order_id": orders[0].data.order_id},
        )
        assert [note["template"] for note in notes["items"]] == ["order_expired"]
    finally:
        second.terminate()
        await asyncio.to_thread(second.reap, time.monotonic() + 15)


def _replica_of(orders: Process, name: str) -> Process:
    """Another orders process: same database, topics and group, its own port."""
    port = free_port()
    return dataclasses.replace(
        orders,
        name=name,
        port=port,
        env={**orders.env, "HTTP_PORT": str(port)},
        log_path=orders.log_path.with_name(f"{name}.log"),
        popen=None,
    )


async def test_an_order_expires_within_a_sweep_of_its_deadline_on_the_real_clock(
    seller: Seller, http: httpx.AsyncClient
) -> None:
    response = await http.put(
        seller.stack.url("orders") + "/v1/seller/settings",
        json={"buyer_access_requires_approval": False, "pending_order_expiry_days": 1},
        headers=seller.headers,
    )
    assert response.status_code == 200
    buyer = Buyer.new("Dana Deadline")
    due = datetime.now(UTC) + timedelta(seconds=4)
    order = placed_order(
        seller_id=seller.seller_id,
        seller_name=seller.name,
        buyer=buyer.as_contract(),
        payment_method=card(),
        placed_at=(due - timedelta(days=1)).isoformat(),
    )
    await seller.stack.place(order)
    order_id = order.data.order_id
    pending = await seller.order_once(order_id, status="pending")
    assert datetime.fromisoformat(pending["expires_at"]) == due.replace(
        microsecond=due.microsecond // 1000 * 1000
    )

    async def status() -> str:
        return str((await seller.ok("orders", "GET", f"/v1/orders/{order_id}"))["status"])

    while datetime.now(UTC) < due - timedelta(milliseconds=300):
        assert await status() == "pending"  # not before its deadline
        await asyncio.sleep(0.2)
    await wait_until(status, equals="expired", timeout=WAIT, interval=0.05)
    late = (datetime.now(UTC) - due).total_seconds()
    print(f"\nexpired {late:.2f} s after its deadline (EXPIRY_SWEEP_SECONDS=1)")
    assert late < 1 + 2  # one sweep interval, plus a sweep and the reads that saw it
    await seller.stack.inbox.wait_for(buyer.email, SUBJECT.format(order_id=order_id))


async def test_a_replica_killed_holding_the_expiry_lease_is_replaced_once_it_lapses(
    seller: Seller, http: httpx.AsyncClient
) -> None:
    stack = seller.stack
    first = stack.processes["orders"]
    second = _replica_of(first, "orders-killed")
    second.start()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongodb_url)
    leases = client[first.env["MONGODB_DATABASE"]]["leases"]
    try:
        await second.wait_ready(http, time.monotonic() + 90)
        response = await http.put(
            stack.url("orders") + "/v1/seller/settings",
            json={"buyer_access_requires_approval": False, "pending_order_expiry_days": 1},
            headers=seller.headers,
        )
        assert response.status_code == 200

        async def holder() -> int | None:
            lease = await leases.find_one({"_id": "order-expiry"})
            return int(lease["owner"].split(":")[1]) if lease else None

        await wait_until(holder, equals=first.pid, timeout=WAIT)  # the first started first
        buyers = [Buyer.new(f"Kim {n}") for n in range(3)]
        due = datetime.now(UTC) + timedelta(seconds=2)
        orders = [
            placed_order(
                seller_id=seller.seller_id,
                seller_name=seller.name,
                buyer=buyer.as_contract(),
                payment_method=card(),
                placed_at=(due - timedelta(days=1)).isoformat(),
            )
            for buyer in buyers
        ]
        for order in orders:
            await stack.place(order)
        for order in orders:
            await seller.order_once(order.data.order_id, status="pending")
        first.kill()  # SIGKILL while it holds the lease: it never gives it up
        killed_at = time.monotonic()

        async def expired() -> int:
            table = (
                await http.get(
                    second.url + "/v1/orders",
                    params={"status": "expired", "page_size": 100},
                    headers=seller.headers,
                )
            ).json()
            return int(table["total_count"])

        await wait_until(expired, equals=len(orders), timeout=WAIT, interval=0.2)
        took = time.monotonic() - killed_at
        print(f"\ntaken over and expired {took:.1f} s after the holder was killed (lease 3 s)")
        assert await holder() == second.pid
        for buyer, order in zip(buyers, orders, strict=True):
            await stack.inbox.wait_for(buyer.email, SUBJECT.format(order_id=order.data.order_id))
    finally:
        await client.close()
        second.terminate()
        await asyncio.to_thread(second.reap, time.monotonic() + 15)
        if first.exited() is not None:
            await first.restart(http)

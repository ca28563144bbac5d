"""Pending orders the seller never answers expire: on real Kafka, FerretDB and HTTP.

The clock is injected and moved by the tests; nothing sleeps until a deadline. Sweeps are run
by hand (`tick`) where a test must know when one happens, and by the service's own schedule
(every 0.1 s) where replicas compete for them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from juniper_shared.clock import utc_now
from juniper_shared.contracts.events import OrderPlacedData
from juniper_shared.metrics import DB_COMMANDS
from juniper_testkit import placed_order, serving, wait_until
from orders.adapters.lease import LEASES, MongoLease
from orders.bootstrap import build_app
from orders.domain.expiry import deadline
from orders.domain.placing import place_order
from orders.metrics import EXPIRY_LAG
from pymongo import AsyncMongoClient

from .conftest import OrdersUnderTest, make_settings

pytestmark = pytest.mark.integration

SELLER = "seller-expiry"
LEASE_SECONDS = 30
NEW_CUSTOMER = {"customer": {"create": {"name": "Maple & Co", "email": "ada@example.com"}}}


@dataclass
class Clock:
    """The services' clock, moved by the test."""

    now: datetime = field(default_factory=utc_now)

    def __call__(self) -> datetime:
        return self.now

    def move(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Replica:
    app: FastAPI
    service: OrdersUnderTest

    async def tick(self) -> int:
        expired: int = await self.app.state.sweeper.tick()
        return expired


@dataclass
class Deployment:
    infra: Any
    database_name: str
    prefix: str
    clock: Clock
    stack: AsyncExitStack

    async def replica(self, *, sweep_seconds: float = 3600.0) -> Replica:
        """One more orders-service process on the same database and topics. With the default,
        its schedule sweeps once at start and then only when the test ticks."""
        settings = make_settings(self.infra, self.database_name, self.prefix).model_copy(
            update={
                "expiry_sweep_seconds": sweep_seconds,
                "expiry_lease_seconds": LEASE_SECONDS,
            }
        )
        app = build_app(settings, clock=self.clock)
        base_url = await self.stack.enter_async_context(serving(app))
        http = await self.stack.enter_async_context(
            httpx.AsyncClient(base_url=base_url, timeout=30)
        )
        return Replica(app, OrdersUnderTest(http=http, settings=settings, prefix=self.prefix))


@pytest.fixture
async def deployment(infra: Any, database_name: str, unique: str) -> AsyncIterator[Deployment]:
    prefix = f"t{unique}."
    await infra.provision(prefix)
    async with AsyncExitStack() as stack:
        yield Deployment(infra, database_name, prefix, Clock(), stack)


async def set_window(service: OrdersUnderTest, days: int, seller: str = SELLER) -> None:
    response = await service.http.put(
        "/v1/seller/settings",
        json={"buyer_access_requires_approval": False, "pending_order_expiry_days": days},
        headers=service.as_seller(seller),
    )
    assert response.status_code == 200, response.text
    assert response.json()["pending_order_expiry_days"] == days


async def place(service: OrdersUnderTest, clock: Clock, count: int = 1) -> list[str]:
    """Orders placed now (by the moved clock); returns their ids once the service has them."""
    events = [placed_order(seller_id=SELLER, placed_at=clock.now.isoformat()) for _ in range(count)]
    await service.place(*events)
    ids = [event.data.order_id for event in events]
    for order_id in ids:
        await service.wait_for_order(SELLER, order_id)
    return ids


async def order(service: OrdersUnderTest, order_id: str) -> dict[str, Any]:
    response = await service.http.get(f"/v1/orders/{order_id}", headers=service.as_seller(SELLER))
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def statuses(service: OrdersUnderTest, order_ids: list[str]) -> list[str]:
    return [(await order(service, order_id))["status"] for order_id in order_ids]


async def expired_events(
    service: OrdersUnderTest, until: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    events = await service.events(lambda events: until(of_type(events, "order.expired")))
    return of_type(events, "order.expired")


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == kind]


async def test_a_pending_order_expires_at_its_deadline_and_not_before(
    deployment: Deployment,
) -> None:
    replica = await deployment.replica()
    service, clock = replica.service, deployment.clock
    await set_window(service, 2)
    [order_id] = await place(service, clock)
    placed = await order(service, order_id)
    due = datetime.fromisoformat(placed["expires_at"])
    assert due == deadline(clock.now, 2)

    clock.now = due - timedelta(milliseconds=1)
    assert await replica.tick() == 0
    assert (await order(service, order_id))["status"] == "pending"

    clock.now = due
    assert await replica.tick() == 1
    expired = await order(service, order_id)
    assert expired["status"] == "expired"
    assert expired["expires_at"] is None
    assert [entry["type"] for entry in expired["history"]][-1] == "expired"

    # The seller's late answer is refused, whatever version they saw.
    seller = service.as_seller(SELLER)
    late = await service.http.post(f"/v1/orders/{order_id}/accept", headers=seller)
    assert (late.status_code, late.json()["error"]["code"]) == (409, "invalid_state")
    with_version = await service.http.post(
        f"/v1/orders/{order_id}/reject",
        headers={**seller, "If-Match": f'"{placed["version"]}"'},
        json={"reason": "other"},
    )
    assert (with_version.status_code, with_version.json()["error"]["code"]) == (
        409,
        "invalid_state",
    )

    # The All Orders table filters on it, and the world is told once.
    table = await service.http.get("/v1/orders?status=expired", headers=seller)
    assert [row["order_id"] for row in table.json()["items"]] == [order_id]
    events = await expired_events(service, lambda found: len(found) >= 1)
    assert len({event["event_id"] for event in events}) == 1
    assert events[0]["data"]["order"]["status"] == "expired"
    assert events[0]["data"]["order"]["order_id"] == order_id
    assert datetime.fromisoformat(events[0]["data"]["expires_at"]) == due
    assert await replica.tick() == 0  # nothing more to do


async def test_an_accept_racing_the_expiry_has_exactly_one_winner(
    deployment: Deployment,
) -> None:
    replica = await deployment.replica()
    service, clock = replica.service, deployment.clock
    await set_window(service, 1)
    rounds = 25
    first_placed = clock.now
    order_ids: list[str] = []
    for _ in range(rounds):  # a second apart, so each round makes exactly one order due
        order_ids += await place(service, clock)
        clock.move(seconds=1)
    seller = service.as_seller(SELLER)
    winners: dict[str, str] = {}

    async def accept_soon(order_id: str) -> httpx.Response:
        await asyncio.sleep(random.uniform(0, 0.03))
        return await service.http.post(
            f"/v1/orders/{order_id}/accept", headers=seller, json=NEW_CUSTOMER
        )

    for number, order_id in enumerate(order_ids):
        clock.now = deadline(first_placed + timedelta(seconds=number), 1)
        accept, expired = await asyncio.gather(accept_soon(order_id), replica.tick())
        status = (await order(service, order_id))["status"]
        if accept.status_code == 200:
            assert (expired, status) == (0, "approved")
        else:
            assert (accept.status_code, accept.json()["error"]["code"]) == (409, "invalid_state")
            assert (expired, status) == (1, "expired")
        winners[order_id] = status

    def settled(events: list[dict[str, Any]]) -> bool:
        told = {
            event["data"]["order"]["order_id"]
            for event in events
            if event["type"] in ("order.accepted", "order.expired")
        }
        return told >= set(order_ids)

    events = await service.events(settled)
    for order_id, status in winners.items():
        told = [
            event["type"]
            for event in events
            if event["type"] in ("order.accepted", "order.expired")
            and event["data"]["order"]["order_id"] == order_id
        ]
        assert told == ["order.accepted" if status == "approved" else "order.expired"]
    # Both sides won some rounds, or the race was not run.
    print(f"race winners: {sorted(winners.values()).count('expired')} expired of {rounds}")


async def test_two_replicas_sweeping_expire_each_order_once(deployment: Deployment) -> None:
    first = await deployment.replica(sweep_seconds=0.1)
    second = await deployment.replica(sweep_seconds=0.1)
    clock = deployment.clock
    await set_window(first.service, 1)
    order_ids = await place(first.service, clock, 30)
    clock.move(days=1, seconds=1)

    async def all_expired() -> bool:
        return set(await statuses(second.service, order_ids)) == {"expired"}

    await wait_until(all_expired, equals=True, timeout=30)
    await expired_events(first.service, lambda found: len(found) >= len(order_ids))
    await asyncio.sleep(1)  # a second sweeper's expiry, if there were one, would be out now
    events = await expired_events(first.service, lambda found: len(found) >= len(order_ids))
    # One expiry each. The outbox is at least once, so a record may come twice (a replica's
    # poller republishing before the writer cleared it), but always as the same event.
    expiries = {(e["data"]["order"]["order_id"], e["event_id"]) for e in events}
    assert sorted(order_id for order_id, _ in expiries) == sorted(order_ids)
    for order_id in order_ids:
        history = (await order(first.service, order_id))["history"]
        assert [entry["type"] for entry in history].count("expired") == 1


async def test_a_replica_that_died_holding_the_lease_is_taken_over_once_it_lapses(
    deployment: Deployment, mongo_client: AsyncMongoClient[dict[str, Any]]
) -> None:
    clock = deployment.clock
    survivor = await deployment.replica()
    await set_window(survivor.service, 1)
    order_ids = await place(survivor.service, clock, 3)
    clock.move(days=1)  # due now
    # What a killed replica leaves behind: the lease it held, never renewed again.
    died = MongoLease(
        mongo_client[deployment.database_name][LEASES],
        name="order-expiry",
        owner="killed-replica",
        ttl=timedelta(seconds=LEASE_SECONDS),
        clock=clock,
    )
    assert await died.hold()

    clock.move(seconds=LEASE_SECONDS - 5)  # the lease has not lapsed
    assert await survivor.tick() == 0
    assert set(await statuses(survivor.service, order_ids)) == {"pending"}
    # The survivor does not sweep, but it sees the lag grow.
    assert EXPIRY_LAG._value.get() == pytest.approx(LEASE_SECONDS - 5, abs=1)

    clock.move(seconds=6)  # now it has
    assert await survivor.tick() == len(order_ids)
    assert set(await statuses(survivor.service, order_ids)) == {"expired"}
    assert not await died.hold()  # the dead replica, back, finds it taken


async def test_a_replica_stopped_mid_schedule_hands_over_at_once(deployment: Deployment) -> None:
    clock = deployment.clock
    async with AsyncExitStack() as first_stack:
        first = await Deployment(
            deployment.infra, deployment.database_name, deployment.prefix, clock, first_stack
        ).replica(sweep_seconds=0.1)
        await wait_until(lambda: _holds(first), equals=True)
        second = await deployment.replica(sweep_seconds=0.1)
        await set_window(second.service, 1)
        # SIGTERM: the first replica's lifespan stops its sweeper and releases the lease.
    order_ids = await place(second.service, clock, 2)
    clock.move(days=1)

    async def all_expired() -> bool:
        return set(await statuses(second.service, order_ids)) == {"expired"}

    await wait_until(all_expired, equals=True, timeout=20)


async def _holds(replica: Replica) -> bool:
    held: bool = replica.app.state.sweeper.holds_lease
    return held


async def test_a_seller_shortening_and_lengthening_the_window_moves_pending_deadlines(
    deployment: Deployment,
) -> None:
    replica = await deployment.replica()
    service, clock = replica.service, deployment.clock
    await set_window(service, 14)
    placed_at = clock.now
    [shortened, lengthened] = await place(service, clock, 2)

    clock.move(days=5)
    assert await replica.tick() == 0
    await set_window(service, 3)  # both are now past their deadline
    assert datetime.fromisoformat((await order(service, shortened))["expires_at"]) == deadline(
        placed_at, 3
    )
    await set_window(service, 30)  # and now neither is
    for order_id in (shortened, lengthened):
        assert datetime.fromisoformat((await order(service, order_id))["expires_at"]) == (
            deadline(placed_at, 30)
        )
    assert await replica.tick() == 0

    clock.now = deadline(placed_at, 30) - timedelta(seconds=1)
    accepted = await service.http.post(
        f"/v1/orders/{lengthened}/accept", headers=service.as_seller(SELLER), json=NEW_CUSTOMER
    )
    assert accepted.status_code == 200, accepted.text
    assert await replica.tick() == 0
    clock.move(seconds=1)
    assert await replica.tick() == 1
    assert await statuses(service, [shortened, lengthened]) == ["expired", "approved"]


async def test_an_order_stored_with_another_window_is_judged_by_the_sellers_window(
    deployment: Deployment, mongo_client: AsyncMongoClient[dict[str, Any]]
) -> None:
    """An order that arrived while its seller changed the window keeps the old one until the
    sweeper meets it; an order stored before there were windows has none."""
    replica = await deployment.replica()
    service, clock = replica.service, deployment.clock
    await set_window(service, 10)
    [raced, legacy] = await place(service, clock, 2)
    orders = mongo_client[deployment.database_name]["orders"]
    await orders.update_one({"_id": raced}, {"$set": {"expiry_days": "2"}})  # 2-day deadline
    await orders.update_one({"_id": raced}, {"$inc": {"expires_at": -8 * 86_400_000}})
    await orders.update_one({"_id": legacy}, {"$unset": {"expires_at": "", "expiry_days": ""}})

    clock.move(days=3)
    assert await replica.tick() == 0  # the seller's window is 10 days: both rescheduled
    for order_id in (raced, legacy):
        body = await order(service, order_id)
        assert body["status"] == "pending"
        assert datetime.fromisoformat(body["expires_at"]) == deadline(
            clock.now - timedelta(days=3), 10
        )
    clock.move(days=7)
    assert await replica.tick() == 2


async def test_ten_thousand_pending_orders_a_thousand_due_expire_in_bounded_time(
    deployment: Deployment,
) -> None:
    replica = await deployment.replica()
    service, clock = replica.service, deployment.clock
    await set_window(service, 14)
    start = clock.now
    commands = replica.app.state.commands
    total, due = 10_000, 1_000

    def stored(number: int) -> Any:
        # Placed a minute apart: the first `due` are past 14 days when the clock moves.
        placed_at = start + timedelta(minutes=number)
        data = OrderPlacedData.model_validate(
            placed_order(seller_id=SELLER, placed_at=placed_at.isoformat()).data.model_dump()
        )
        placed = place_order(data, buyer_admitted=True, now=placed_at)
        placed.expires_at, placed.expiry_days = deadline(placed_at, 14), 14
        return placed

    stored_ids: list[str] = []
    for offset in range(0, total, 2_000):
        batch = [stored(n) for n in range(offset, offset + 2_000)]
        stored_ids += [placed.order_id for placed in batch]
        await commands.orders.add_placed(batch)
    clock.now = deadline(start + timedelta(minutes=due - 1), 14)

    before = _commands()
    began = time.perf_counter()
    expired = await replica.tick()
    seconds = time.perf_counter() - began
    sweep = _commands() - before
    assert expired == due
    assert await replica.tick() == 0
    await asyncio.sleep(2)  # the outbox relay clears what it published
    with_relay = _commands() - before
    table = await service.http.get(
        "/v1/orders?status=expired&page_size=1", headers=service.as_seller(SELLER)
    )
    assert table.json()["total_count"] == due
    print(
        f"\n10,000 pending, 1,000 due: expired in {seconds:.2f} s; sweeper round trips "
        f"{sweep} ({sweep / due:.2f} per expired order); with the relay's "
        f"{with_relay} ({with_relay / due:.2f})"
    )
    assert seconds < 60
    assert sweep / due < 1.2  # one guarded write each, plus a page read and a lease renewal

    # The seller lengthens the window: the 9,000 pending deadlines move, in bounded steps.
    before = _commands()
    began = time.perf_counter()
    await set_window(service, 20)
    moving = time.perf_counter() - began
    moved = _commands() - before
    print(f"moving 9,000 deadlines: {moving:.2f} s, {moved} round trips")
    last = await order(service, stored_ids[-1])
    assert datetime.fromisoformat(last["expires_at"]) == deadline(
        start + timedelta(minutes=total - 1), 20
    )
    assert moving < 60


def _commands() -> int:
    return int(
        sum(
            sample.value
            for metric in DB_COMMANDS.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
    )


async def test_the_window_is_a_whole_number_of_days_from_1_to_90(deployment: Deployment) -> None:
    service = (await deployment.replica()).service
    seller = service.as_seller("seller-window")
    shown = await service.http.get("/v1/seller/settings", headers=seller)
    assert shown.json() == {
        "buyer_access_requires_approval": True,
        "pending_order_expiry_days": 14,
    }
    for refused in (0, 91, "7", 7.5, None, True):
        response = await service.http.put(
            "/v1/seller/settings", json={"pending_order_expiry_days": refused}, headers=seller
        )
        assert (response.status_code, response.json()["error"]["code"]) == (
            422,
            "validation_error",
        ), refused
    changed = await service.http.put(
        "/v1/seller/settings", json={"pending_order_expiry_days": 90}, headers=seller
    )
    assert changed.json() == {
        "buyer_access_requires_approval": True,
        "pending_order_expiry_days": 90,
    }

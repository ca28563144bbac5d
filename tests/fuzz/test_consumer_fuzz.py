"""Message fuzzing: hostile messages mixed into a stream of good ones, for every topic and
every consumer. (Runs before the linked stack of the other modules starts, so the skipped
counter it reads moves only with its own streams.)

Each consumer runs with a topic prefix of its own, so its dead-letter topic holds only what it
refused. For each (topic, consumer): every poison message lands in `<topic>.dlq` with the reason
in `dlq-error`; a well-formed unknown type is skipped and counted in `jm_messages_skipped_total`;
every good message (each published twice) has its effect exactly once; and the last message,
a good one after all the poison, is processed (no stalled partition).
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from juniper_shared.contracts.common import OrderLine
from juniper_shared.contracts.events import Envelope, OrderSplit, OrderSplitData
from juniper_testkit import read_topic

from .conftest import CASES, budget
from .messages import Bad, generate, hostile
from .stack import Stack, running_stack
from .support import (
    Record,
    accept,
    accepted,
    client,
    eventually,
    invoice_issued,
    payment_succeeded,
    placed,
    produce,
    record_of,
    rejected,
    run,
    snapshot,
    ungate,
)

pytestmark = [
    pytest.mark.integration,
    # The services run in another thread and draw from `random` (backoff jitter) while
    # Hypothesis generates; and an oversized message has an oversized repr.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning"),
]

BAD_PER_KIND = budget(2)
"""Hostile messages of each kind per stream (ten or eleven kinds)."""
GOOD_PER_STREAM = 3


@pytest.fixture(scope="module")
def stack(infra: Any) -> Iterator[Stack]:
    with running_stack(infra, linked=False) as running:
        yield running


@dataclass
class Scenario:
    """Good events for one consumer of one topic, and how to see that each had its effect."""

    topic: str
    service: str
    prepare: Callable[[Stack, str], Awaitable[list[Envelope]]]
    """Set up what the good events need; returns them (each is published twice)."""
    effect: Callable[[Stack, str, list[Envelope]], Awaitable[None]]
    """Waits until every good event had its effect, and checks it happened exactly once."""


# --- good events and their effects, per consumer ------------------------------------------


async def _placed_orders(stack: Stack, seller: str) -> list[Envelope]:
    return [placed(seller) for _ in range(GOOD_PER_STREAM)]


async def _orders_stored(stack: Stack, seller: str, events: list[Envelope]) -> None:
    async with client(stack, "orders", seller) as orders:

        async def stored() -> int:
            return int(
                (await orders.get("/v1/orders", params={"page_size": 100})).json()["total_count"]
            )

        await eventually(stored, len(events))
        for event in events:
            answer = await orders.get(f"/v1/orders/{event.key()}")
            assert answer.status_code == 200


async def _accepted_orders(stack: Stack, seller: str) -> list[Envelope]:
    return [accepted(placed(seller)) for _ in range(GOOD_PER_STREAM)]


async def _invoiceable(stack: Stack, seller: str, events: list[Envelope]) -> None:
    shipping = {
        "carrier": "UPS",
        "tracking_number": "1Z",
        "shipped_at": "2026-01-02",
        "shipping_cost": "1.00",
    }
    async with client(stack, "invoicing", seller) as invoicing:
        for event in events:

            async def previewed(order_id: str = event.key()) -> int:
                answer = await invoicing.post(
                    f"/v1/orders/{order_id}/invoice/preview", json={"shipping": shipping}
                )
                return answer.status_code

            await eventually(previewed, 200)


async def _rejections(stack: Stack, seller: str) -> list[Envelope]:
    return [rejected(placed(seller)) for _ in range(GOOD_PER_STREAM)]


async def _one_email_each(stack: Stack, seller: str, events: list[Envelope]) -> None:
    assert stack.inbox is not None
    async with client(stack, "notifications", seller) as notifications:
        for event in events:
            order_id = getattr(event.data, "order_id", None)

            async def listed(order_id: Any = order_id) -> list[str]:
                answer = await notifications.get("/v1/notifications", params={"order_id": order_id})
                return [
                    item["event_id"] for item in answer.json()["items"] if item["status"] == "sent"
                ]

            await eventually(listed, [str(event.event_id)])
            assert len(stack.inbox.with_message_id(str(event.event_id))) == 1


async def _invoices_to_mail(stack: Stack, seller: str) -> list[Envelope]:
    return [invoice_issued(placed(seller)) for _ in range(GOOD_PER_STREAM)]


async def _splits(stack: Stack, seller: str) -> list[Envelope]:
    events: list[Envelope] = []
    for _ in range(GOOD_PER_STREAM):
        order = placed(seller)
        parent = snapshot(order, status="pending")
        first, *moved = parent.items
        new_id = f"{order.data.order_id}-2"
        child_lines = [OrderLine.model_validate(line.model_dump()) for line in moved]
        child = parent.model_copy(
            update={"order_id": new_id, "items": child_lines, "split_from": order.data.order_id}
        )
        events.append(
            OrderSplit(
                producer="orders",
                seller_id=seller,
                data=OrderSplitData(
                    parent=parent.model_copy(update={"items": [first]}),
                    new_order=child,
                    moved_line_ids=[line.line_id for line in moved],
                ),
            )
        )
    return events


async def _split_cards_kept(stack: Stack, seller: str, events: list[Envelope]) -> None:
    """Payments learns a split order's card from the split: the new order's invoice is charged."""
    topic = stack.topic("payments", "invoices.events")
    invoices = []
    for event in events:
        assert isinstance(event, OrderSplit)
        new_order = event.data.new_order
        issued = invoice_issued(placed(seller, order_id=new_order.order_id))
        invoices.append(issued)
    await produce(stack.kafka_bootstrap, topic, [record_of(issued) for issued in invoices])
    await _charged_once(stack, seller, invoices)


async def _cards_and_invoices(stack: Stack, seller: str) -> list[Envelope]:
    orders = [placed(seller) for _ in range(GOOD_PER_STREAM)]
    await produce(
        stack.kafka_bootstrap,
        stack.topic("payments", "orders.placed"),
        [record_of(order) for order in orders],
    )
    return [invoice_issued(order) for order in orders]


async def _cards_for_splits(stack: Stack, seller: str) -> list[Envelope]:
    events = await _splits(stack, seller)
    parents = [
        placed(seller, order_id=event.data.parent.order_id)  # type: ignore[attr-defined]
        for event in events
    ]
    await produce(
        stack.kafka_bootstrap,
        stack.topic("payments", "orders.placed"),
        [record_of(order) for order in parents],
    )
    return events


async def _charged_once(stack: Stack, seller: str, events: list[Envelope]) -> None:
    async with (
        client(stack, "payments", seller) as payments,
        httpx.AsyncClient(base_url=stack.sandbox_url, timeout=30) as sandbox,
    ):
        for event in events:
            invoice_id = event.key()

            async def status(invoice_id: str = invoice_id) -> str | None:
                answer = await payments.get("/v1/payments", params={"invoice_id": invoice_id})
                return answer.json()["status"] if answer.status_code == 200 else None

            await eventually(status, "succeeded")
            charges = (await sandbox.get("/v1/charges", params={"reference": invoice_id})).json()
            assert len(charges) == 1, charges


async def _orders_to_invoice(stack: Stack, seller: str) -> list[Envelope]:
    await ungate(stack, seller)
    orders = [placed(seller) for _ in range(GOOD_PER_STREAM)]
    await produce(
        stack.kafka_bootstrap,
        stack.topic("orders", "orders.placed"),
        [record_of(order) for order in orders],
    )
    async with client(stack, "orders", seller) as http:
        for order in orders:
            assert (await accept(http, order.data.order_id)).status_code == 200
    return [invoice_issued(order) for order in orders]


async def _invoice_linked_once(stack: Stack, seller: str, events: list[Envelope]) -> None:
    async with client(stack, "orders", seller) as orders:
        for event in events:
            order_id = event.data.order_id  # type: ignore[attr-defined]

            async def linked(order_id: str = order_id) -> str | None:
                invoice = (await orders.get(f"/v1/orders/{order_id}")).json()["invoice"]
                return invoice["invoice_id"] if invoice else None

            await eventually(linked, event.key())
            details = (await orders.get(f"/v1/orders/{order_id}")).json()
            # placed v1, accepted v2, invoice linked v3: the duplicate changed nothing.
            assert details["version"] == 3, details["history"]


async def _issued_invoices(stack: Stack, seller: str) -> list[Envelope]:
    orders = [placed(seller) for _ in range(GOOD_PER_STREAM)]
    topic = stack.topic("invoicing", "orders.events")
    await produce(stack.kafka_bootstrap, topic, [record_of(accepted(order)) for order in orders])
    shipping = {
        "carrier": "UPS",
        "tracking_number": "1Z",
        "shipped_at": "2026-01-02",
        "shipping_cost": "1.00",
    }
    events: list[Envelope] = []
    async with client(stack, "invoicing", seller) as invoicing:
        for order in orders:

            async def preview(order_id: str = order.data.order_id) -> int:
                answer = await invoicing.post(
                    f"/v1/orders/{order_id}/invoice/preview", json={"shipping": shipping}
                )
                preview.body = answer.json()  # type: ignore[attr-defined]
                return answer.status_code

            await eventually(preview, 200)
            draft = preview.body  # type: ignore[attr-defined]
            confirmed = await invoicing.post(f"/v1/invoices/{draft['invoice_id']}/confirm")
            assert confirmed.status_code == 200, confirmed.text
            events.append(
                payment_succeeded(
                    invoice_id=draft["invoice_id"],
                    order_id=order.data.order_id,
                    seller_id=seller,
                    amount=Decimal(draft["total"]),
                )
            )
    return events


async def _invoices_paid(stack: Stack, seller: str, events: list[Envelope]) -> None:
    async with client(stack, "invoicing", seller) as invoicing:
        for event in events:

            async def status(invoice_id: str = event.key()) -> str:
                return str((await invoicing.get(f"/v1/invoices/{invoice_id}")).json()["status"])

            await eventually(status, "paid")


SCENARIOS = {
    "orders.placed->orders": Scenario("orders.placed", "orders", _placed_orders, _orders_stored),
    "orders.events->invoicing": Scenario(
        "orders.events", "invoicing", _accepted_orders, _invoiceable
    ),
    "orders.events->notifications": Scenario(
        "orders.events", "notifications", _rejections, _one_email_each
    ),
    "orders.events->payments": Scenario(
        "orders.events", "payments", _cards_for_splits, _split_cards_kept
    ),
    "invoices.events->orders": Scenario(
        "invoices.events", "orders", _orders_to_invoice, _invoice_linked_once
    ),
    "invoices.events->payments": Scenario(
        "invoices.events", "payments", _cards_and_invoices, _charged_once
    ),
    "invoices.events->notifications": Scenario(
        "invoices.events", "notifications", _invoices_to_mail, _one_email_each
    ),
    "payments.events->invoicing": Scenario(
        "payments.events", "invoicing", _issued_invoices, _invoices_paid
    ),
}


def skipped(stack: Stack, service: str, topic: str) -> float:
    """`jm_messages_skipped_total` for `topic`, as the service's /metrics shows it."""
    text = httpx.get(f"{stack.urls[service]}/metrics", timeout=10).text
    match = re.search(
        rf'^jm_messages_skipped_total{{topic="{re.escape(topic)}"}} (\S+)$', text, re.M
    )
    return float(match.group(1)) if match else 0.0


def interleave(
    bad: list[Bad], good: list[Envelope], *, seed: str
) -> list[tuple[Record, Bad | None]]:
    """The good events but the last scattered among the bad ones, then each of them again
    (duplicates), then the last good event, twice: it shares the poison's key, so it comes
    after all of it on the same partition."""
    *scattered, last = good
    stream: list[tuple[Record, Bad | None]] = [(message.record(), message) for message in bad]
    stream += [(record_of(event), None) for event in scattered]
    random.Random(seed).shuffle(stream)
    stream += [(record_of(event), None) for event in scattered]
    return [*stream, (record_of(last), None), (record_of(last), None)]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_hostile_messages_are_dead_lettered_and_never_stall(stack: Stack, name: str) -> None:
    scenario = SCENARIOS[name]
    seller = f"seller-{uuid.uuid4().hex[:8]}"
    run(_fuzz(stack, scenario, seller, name))


async def _fuzz(stack: Stack, scenario: Scenario, seller: str, name: str) -> None:
    good = await scenario.prepare(stack, seller)
    template = json.loads(good[0].model_dump_json())
    bad = generate(
        hostile(template, key=good[-1].key().encode(), event_type=good[0].type), BAD_PER_KIND
    )
    stream = interleave(bad, good, seed=name)
    skipped_before = skipped(stack, scenario.service, scenario.topic)
    topic = stack.topic(scenario.service, scenario.topic)
    sent = await produce(stack.kafka_bootstrap, topic, [record for record, _ in stream])
    CASES[f"messages {name}"] += len(stream)

    # The last message is good and after all the poison on its partition: once every good
    # event had its effect, nothing stalled.
    await scenario.effect(stack, seller, good)

    poisoned = {
        (sent[index].partition, sent[index].offset): message
        for index, (_, message) in enumerate(stream)
        if message and message.poison
    }
    unknown = sum(1 for _, message in stream if message and not message.poison)

    def offset_of(record: Any) -> tuple[int, int]:
        headers = dict(record.headers)
        return int(headers["dlq-source-partition"]), int(headers["dlq-source-offset"])

    dead = (
        await read_topic(
            stack.kafka_bootstrap,
            f"{topic}.dlq",
            until=lambda records: len(records) >= len(poisoned),
            timeout=30,
        )
        if poisoned
        else []
    )
    assert sorted(offset_of(record) for record in dead) == sorted(poisoned), [
        m.kind for m in poisoned.values()
    ]
    for record in dead:
        headers = dict(record.headers)
        reason = headers["dlq-error"].decode()
        assert reason, headers
        if poisoned[offset_of(record)].kind == "oversized":
            assert "exceeds" in reason, reason

    async def skips() -> float:
        return skipped(stack, scenario.service, scenario.topic) - skipped_before

    await eventually(skips, float(unknown))

"""Fault injection: a stream of orders flows through the whole chain while every service is
SIGKILLed and restarted at seeded random moments, the Kafka broker is restarted and poison is
put on every consumed topic. Then nothing may be lost or doubled.

The chain, per order: checkout places it on `orders.placed`; the seller's portal accepts it
(or rejects it) over HTTP, previews and confirms the invoice; payments charges the card at the
sandbox (`tok_visa`); the invoice becomes paid; the buyer is emailed (accepted, invoice,
receipt; or rejected). The portal retries what fails because a service is down, with the same
`Idempotency-Key`, as a real client does.

Run with `make test-faults` (FAULT_SEED, FAULT_ORDERS to vary it). Not part of `make test`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from juniper_shared.contracts.registry import (
    INVOICES_EVENTS,
    ORDERS_EVENTS,
    ORDERS_PLACED,
    PAYMENTS_EVENTS,
    Topic,
    encode,
)
from juniper_shared.producer import Producer
from juniper_shared.settings import ServiceSettings
from juniper_testkit import kafka_credentials, kafka_options, placed_order, placed_order_data

from ..support.portal import Portal, RetryStats, ServiceUnavailable, error_code
from ..support.stack import SERVICES, Email, Inbox, PrivateKafka, Process, Stack

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("FAULT_SEED", "7"))
ORDERS = int(os.environ.get("FAULT_ORDERS", "220"))
SELLERS = 4
REJECT_SHARE = 0.15
WORKERS = 24
"""Orders the portal works on at once (the rest wait in the seller's queue)."""
PLACE_EVERY = 0.3
"""Seconds between two placed orders: the stream lasts ORDERS * PLACE_EVERY seconds."""
EXTRA_KILLS = 2
"""Kills beyond one per service, of services drawn at random."""
DRAIN_DEADLINE = float(os.environ.get("FAULT_DRAIN_SECONDS", "200"))
"""Bound on the wait, after the last fault, for every order, charge and email to settle."""
BUDGET = float(os.environ.get("FAULT_BUDGET_SECONDS", "300"))
"""Bound on the stream and the drain together; the audit and the summary follow regardless,
so `make test-faults` ends with a report inside its 8-minute cap even on a crowded machine."""
POLL = 0.5
SMTP_CONCURRENCY = 8
"""Notifications' default SMTP_CONCURRENCY: emails in flight at once, each one a possible
resend if the process dies between the mail server's 250 and the delivery log's write."""
SHIPPING = {
    "carrier": "UPS",
    "tracking_number": "1Z999AA10123456784",
    "shipped_at": datetime.now(UTC).date().isoformat(),
    "shipping_cost": "15.00",
}
CONSUMED_TOPICS: tuple[Topic, ...] = (
    ORDERS_PLACED,
    ORDERS_EVENTS,
    INVOICES_EVENTS,
    PAYMENTS_EVENTS,
)


@dataclass
class Flow:
    """One order's story as the portal lives it."""

    order_id: str
    seller_id: str
    buyer_email: str
    reject: bool
    placed_at: float = 0.0
    invoice_id: str | None = None
    number: str | None = None
    done_at: float | None = None
    error: str | None = None
    stage: str = "placed"


@dataclass
class Fault:
    at: float
    """Seconds after the stream starts."""
    kind: str
    """kill:<service>, kafka, poison"""
    started: float = 0.0
    recovered: float = 0.0
    """Wall-clock time when it began / when the system answered again."""
    note: str = ""
    failed: str = ""
    """Why the fault could not be injected or the target did not come back."""


@dataclass
class Run:
    flows: dict[str, Flow] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    poison: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    """Topic name -> keys of the poison messages put on it."""
    poison_rounds: int = 0
    stats: RetryStats = field(default_factory=RetryStats)
    place_retries: int = 0
    checkout_producers_replaced: int = 0
    failed_starts: Counter[str] = field(default_factory=Counter)
    """Restarts that exited during start-up (a service does not start while Kafka is down)."""


# --- the chain, driven as its users drive it -------------------------------------------------


async def place(checkout: Producer, stack: Stack, order: Any, run: Run) -> None:
    """Checkout publishes, and publishes again while the broker cannot take it (the same order
    id twice is one order). Its producer is the services' own, so a send Kafka never
    acknowledges (a stale leader after a broker restart) gets a new producer."""
    give_up = time.monotonic() + 120
    while True:
        try:
            await checkout.send_all(
                [
                    (
                        stack.topic_prefix + ORDERS_PLACED.name,
                        order.key().encode(),
                        encode(order),
                        [("type", order.type.encode())],
                    )
                ]
            )
            return
        except Exception as error:
            if time.monotonic() > give_up:
                raise
            run.place_retries += 1
            if isinstance(error, TimeoutError):
                run.checkout_producers_replaced += 1
            await asyncio.sleep(1.0)


async def until(probe: Any, *, timeout: float) -> Any:
    """Poll `probe` until it returns something truthy (bounded)."""
    give_up = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > give_up:
            raise TimeoutError("gave up waiting")
        await asyncio.sleep(POLL)


async def live_order(portal: Portal, flow: Flow) -> None:
    """Pending -> decided -> invoiced -> confirmed -> paid, retrying through faults."""
    order_path = f"/v1/orders/{flow.order_id}"

    async def stored() -> dict[str, Any] | None:
        response = await portal.call("orders", "GET", order_path)
        return response.json() if response.status_code == 200 else None

    order = await until(stored, timeout=240)
    flow.stage = "stored"
    assert order["status"] == "pending", order["status"]
    if flow.reject:
        body = {"reason": "out_of_stock", "message": "Sold out until spring."}
        response = await portal.call("orders", "POST", order_path + "/reject", json=body)
        await decided(portal, flow, response, "rejected")
        flow.done_at = time.time()
        return
    # A buyer new to the seller: accepting creates the customer, as the portal's dialog does.
    customer = {"create": {"name": "Maple & Co", "email": flow.buyer_email}}
    response = await portal.call(
        "orders", "POST", order_path + "/accept", json={"customer": customer}
    )
    await decided(portal, flow, response, "approved")
    flow.stage = "accepted"

    async def drafted() -> dict[str, Any] | None:
        # A new key per press: "not invoiceable yet" is an answer the key would replay.
        response = await portal.call(
            "invoicing",
            "POST",
            f"/v1/orders/{flow.order_id}/invoice/preview",
            json={"shipping": SHIPPING},
        )
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        # Pressed before invoicing heard of the order (not_found) or of its approval, or after
        # a confirm already went out (order_not_invoiceable).
        assert error_code(response) in ("not_found", "order_not_invoiceable"), response.text
        issued = await portal.ok(
            "invoicing", "GET", "/v1/invoices", params={"order_id": flow.order_id}
        )
        numbered = [i for i in issued["items"] if i.get("number")]
        return numbered[0] if numbered else None

    draft = await until(drafted, timeout=240)
    flow.stage = "previewed"
    flow.invoice_id = draft["invoice_id"]
    if draft.get("number") is None:
        confirmed = await portal.ok("invoicing", "POST", f"/v1/invoices/{flow.invoice_id}/confirm")
        flow.number = confirmed["number"]
    else:
        flow.number = draft["number"]
    flow.stage = "confirmed"

    async def paid() -> bool:
        invoice = await portal.ok("invoicing", "GET", f"/v1/invoices/{flow.invoice_id}")
        return bool(invoice["status"] == "paid")

    await until(paid, timeout=240)
    flow.done_at = time.time()


async def decided(portal: Portal, flow: Flow, response: httpx.Response, status: str) -> None:
    """A decision either went through, or a retry found it already made (the process died
    after the write but before the idempotency record): both leave the order in `status`."""
    if response.status_code == 200:
        assert response.json()["status"] == status
        return
    assert error_code(response) == "invalid_state", response.text
    order = await portal.ok("orders", "GET", f"/v1/orders/{flow.order_id}")
    assert order["status"] == status, f"{flow.order_id}: {order['status']} after {response.text}"


# --- faults ----------------------------------------------------------------------------------


def plan_faults(rng: random.Random, window: float) -> list[Fault]:
    kinds = [f"kill:{name}" for name in SERVICES]
    kinds += [f"kill:{rng.choice(SERVICES)}" for _ in range(EXTRA_KILLS)]
    kinds.append("kafka")
    rng.shuffle(kinds)
    times = sorted(rng.uniform(0.08 * window, 0.85 * window) for _ in kinds)
    faults = [Fault(at, kind) for at, kind in zip(times, kinds, strict=True)]
    # Poison early, in the middle and late; the broker restart falls somewhere among them.
    faults += [Fault(fraction * window, "poison") for fraction in (0.05, 0.5, 0.9)]
    return sorted(faults, key=lambda fault: fault.at)


async def inject(
    fault: Fault,
    *,
    rng: random.Random,
    stack: Stack,
    kafka: PrivateKafka,
    producer: AIOKafkaProducer,
    http: httpx.AsyncClient,
    run: Run,
) -> None:
    fault.started = time.time()
    if fault.kind.startswith("kill:"):
        process = stack.processes[fault.kind.removeprefix("kill:")]
        process.kill()
        down = rng.uniform(0.2, 2.0)
        await asyncio.sleep(down)
        took, failed_starts = await supervise(process, http)
        run.failed_starts[process.name] += failed_starts
        fault.note = f"down {down:.1f} s, ready {took:.1f} s after restart" + (
            f" ({failed_starts} failed starts)" if failed_starts else ""
        )
    elif fault.kind == "kafka":
        took = await kafka.restart()
        fault.note = f"stopped and ready again in {took:.1f} s"
    else:
        sent = await put_poison(stack, producer, run)
        fault.note = f"{sent} poison messages"
    fault.recovered = time.time()


async def supervise(process: Process, http: httpx.AsyncClient) -> tuple[float, int]:
    """Start again, and again if it exits during start-up, as a supervisor (Kubernetes'
    restartPolicy: Always) does; bounded. Returns seconds to ready and failed starts."""
    started = time.monotonic()
    failed = 0
    while True:
        try:
            await process.restart(http)
            return time.monotonic() - started, failed
        except RuntimeError:
            if process.exited() is None or time.monotonic() - started > 150:
                raise
            failed += 1
            await asyncio.sleep(min(5.0, 1.0 * failed))


def poison_payloads(topic: Topic, marker: str) -> tuple[list[bytes], list[bytes]]:
    """Kinds no retry can fix, (one per injection, rotating; every injection): not JSON, an
    envelope missing its data, a future version; and on `orders.placed` each time, a forged
    order (another producer than checkout) and one whose fields are each in range but whose
    line total passes the amount cap."""
    envelope = {
        "event_id": str(uuid.uuid4()),
        "type": topic.event_types[0],
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": "chaos",
        "seller_id": "seller-chaos",
        "data": {"poison": marker},
    }
    future = {**envelope, "event_id": str(uuid.uuid4()), "version": 99}
    rotating = [
        b"\x00\xffnot json " + marker.encode(),
        json.dumps(envelope).encode(),
        json.dumps(future).encode(),
    ]
    if topic is not ORDERS_PLACED:
        return rotating, []
    order = placed_order_data(seller_id="seller-chaos", order_id=f"poison-{marker}")
    forged = {**json.loads(encode(placed_order(**order))), "producer": "payments"}
    over_cap = {
        **json.loads(encode(placed_order(**order))),
        "data": {
            **order,
            "items": [{"sku": "X", "name": "X", "unit_price": "999999999.99", "quantity": 2}],
        },
    }
    return rotating, [json.dumps(forged).encode(), json.dumps(over_cap).encode()]


async def put_poison(stack: Stack, producer: AIOKafkaProducer, run: Run) -> int:
    sent = 0
    for topic in CONSUMED_TOPICS:
        marker = uuid.uuid4().hex[:8]
        rotating, every_time = poison_payloads(topic, marker)
        # One of the three per injection, rotating, so every kind reaches every topic.
        chosen = [rotating[run.poison_rounds % len(rotating)], *every_time]
        for number, payload in enumerate(chosen):
            key = f"poison-{marker}-{number}".encode()
            # No type header: every consumer group of the topic must look at it and
            # dead-letter it.
            await producer.send_and_wait(stack.topic_prefix + topic.name, payload, key=key)
            run.poison[topic.name].append(key)
            sent += 1
    run.poison_rounds += 1
    return sent


async def dead_lettered(stack: Stack, bootstrap: str, topic: Topic) -> Counter[bytes]:
    """How many times each key is on `<topic>.dlq` (read from the start to the current end)."""
    return await keys_on(bootstrap, stack.topic_prefix + topic.dlq)


async def keys_on(bootstrap: str, name: str) -> Counter[bytes]:
    """How many times each key is on topic `name` (read from the start to the current end)."""
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap, "ops"))
    await admin.start()
    try:
        described = await admin.describe_topics([name])
    finally:
        await admin.close()
    partitions = [p["partition"] for t in described for p in t.get("partitions", [])]
    if not partitions:
        return Counter()
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap, "ops"), enable_auto_commit=False)
    await consumer.start()
    try:
        assigned = [TopicPartition(name, p) for p in partitions]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        keys: Counter[bytes] = Counter()
        give_up = time.monotonic() + 30
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                keys.update(record.key or b"" for record in records)
            if time.monotonic() > give_up:
                break
        return keys
    finally:
        await consumer.stop()


# --- the run ---------------------------------------------------------------------------------


TEMPLATE_OF_SUBJECT = (
    ("accepted", re.compile(r"^Your order .* was accepted")),
    ("rejected", re.compile(r"^Your order .* was declined")),
    ("invoice", re.compile(r"^Invoice ")),
    ("receipt", re.compile(r"^Receipt: ")),
)


def template_of(mail: Email) -> str:
    for name, pattern in TEMPLATE_OF_SUBJECT:
        if pattern.search(mail.subject):
            return name
    return "other"


async def test_no_order_invoice_charge_or_email_is_lost_or_doubled_under_faults(
    stack: Stack, kafka: PrivateKafka, inbox: Inbox
) -> None:
    rng = random.Random(SEED)
    run = Run()
    sellers = [f"seller-faults-{uuid.uuid4().hex[:8]}" for _ in range(SELLERS)]
    window = ORDERS * PLACE_EVERY
    faults = plan_faults(rng, window)
    run.faults = faults
    # Orders come from the platform's checkout; poison from an operator's hand (`ops` may
    # write every topic).
    checkout_producer = Producer(
        ServiceSettings(kafka_bootstrap_servers=kafka.bootstrap, **kafka_credentials("checkout")),
        client_id="checkout",
        delivery_deadline_seconds=15,
    )
    poisoner = AIOKafkaProducer(
        **kafka_options(kafka.bootstrap, "ops"), enable_idempotence=True, request_timeout_ms=10_000
    )
    await checkout_producer.start()
    await poisoner.start()
    queue: asyncio.Queue[Flow | None] = asyncio.Queue()
    async with httpx.AsyncClient(timeout=10) as http:
        portals = {seller: Portal(stack, http, seller, stats=run.stats) for seller in sellers}
        for portal in portals.values():
            # Not gated: every order arrives pending and waits for the seller's decision.
            await portal.ok(
                "orders",
                "PUT",
                "/v1/seller/settings",
                json={"buyer_access_requires_approval": False},
            )

        async def checkout() -> None:
            for n in range(ORDERS):
                seller = sellers[n % SELLERS]
                buyer = f"buyer-{uuid.uuid4().hex[:10]}"
                order = placed_order(
                    seller_id=seller,
                    seller_name="Juniper Pottery",
                    buyer={
                        "id": buyer,
                        "name": "Ada Buyer",
                        "email": f"{buyer}@example.com",
                        "company": "Maple & Co",
                    },
                )
                flow = Flow(
                    order.data.order_id,
                    seller,
                    f"{buyer}@example.com",
                    reject=rng.random() < REJECT_SHARE,
                    placed_at=time.monotonic(),
                )
                run.flows[flow.order_id] = flow
                await place(checkout_producer, stack, order, run)
                await queue.put(flow)
                await asyncio.sleep(PLACE_EVERY)
            for _ in range(WORKERS):
                await queue.put(None)

        async def seller_desk() -> None:
            while (flow := await queue.get()) is not None:
                try:
                    await live_order(portals[flow.seller_id], flow)
                except (AssertionError, TimeoutError, ServiceUnavailable) as error:
                    flow.error = f"at {flow.stage}: {type(error).__name__}: {error}"

        busy: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

        async def strike(fault: Fault) -> None:
            # Faults overlap (a service may die while the broker restarts), but one target
            # is not struck again before it is back.
            await asyncio.sleep(max(0.0, stream_start + fault.at - time.monotonic()))
            async with busy[fault.kind]:
                try:
                    await inject(
                        fault,
                        rng=rng,
                        stack=stack,
                        kafka=kafka,
                        producer=poisoner,
                        http=http,
                        run=run,
                    )
                except Exception as error:
                    fault.failed = f"{type(error).__name__}: {error}"
                    fault.recovered = time.time()

        async def chaos() -> None:
            await asyncio.gather(*(strike(fault) for fault in faults))

        async def progress() -> None:
            while True:
                await asyncio.sleep(20)
                stages = Counter(
                    "failed" if f.error else "done" if f.done_at else f.stage
                    for f in run.flows.values()
                )
                elapsed = time.monotonic() - stream_start
                print(f"  [{elapsed:5.0f}s] {dict(stages)}", flush=True)

        stream_start = time.monotonic()
        placing = asyncio.create_task(checkout())
        faulting = asyncio.create_task(chaos())
        desks = [asyncio.create_task(seller_desk()) for _ in range(WORKERS)]
        reporting = asyncio.create_task(progress())
        give_up = stream_start + BUDGET

        def remaining(limit: float) -> float:
            return max(1.0, min(limit, give_up - time.monotonic()))

        await asyncio.wait([placing, faulting], timeout=remaining(BUDGET))
        for task in (placing, faulting):
            task.cancel()
        last_fault = max(fault.recovered for fault in faults)
        _, unfinished = await asyncio.wait(desks, timeout=remaining(DRAIN_DEADLINE))
        for desk in unfinished:
            desk.cancel()
        reporting.cancel()
        for flow in run.flows.values():
            if flow.done_at is None and flow.error is None:
                flow.error = f"at {flow.stage}: not settled within the suite's bound"
        flows_done = max((f.done_at or 0.0) for f in run.flows.values())

        # Emails: every expected one (distinct Message-ID), bounded.
        expected_mails = {flow.buyer_email: 1 if flow.reject else 3 for flow in run.flows.values()}

        def missing_mails() -> int:
            distinct: dict[str, set[str]] = defaultdict(set)
            for mail in inbox.all():
                for to in mail.to:
                    distinct[to].add(mail.message_id)
            return sum(max(0, n - len(distinct[to])) for to, n in expected_mails.items())

        async def all_mailed() -> bool:
            return missing_mails() == 0

        with contextlib.suppress(TimeoutError):
            await until(all_mailed, timeout=remaining(DRAIN_DEADLINE))
        last_mail = max((mail.received_at for mail in inbox.all()), default=0.0)
        drain = max(flows_done, last_mail) - last_fault

        # --- what the seller, the card processor and the buyers see now -------------------
        report = await audit(stack, kafka, inbox, run, portals, expected_mails)
    await checkout_producer.stop()
    await poisoner.stop()
    kills = Counter(f.kind.removeprefix("kill:") for f in faults if f.kind.startswith("kill:"))
    print_summary(run, report, kills, drain, stack)

    assert [f.failed for f in faults if f.failed] == []
    assert report["errors"] == [], report["errors"][:5]
    assert report["lost"] == 0, report["lost_traces"]
    assert report["not_final"] == [], report["not_final"][:5]
    assert report["extra_orders"] == 0
    assert report["duplicate_invoices"] == 0
    assert report["gaps"] == {}, report["gaps"]
    assert report["double_charges"] == 0
    assert report["uncharged"] == [], report["uncharged"][:5]
    assert report["missing_emails"] == 0
    # Notifications is at-least-once by design: an email the mail server accepted but the
    # delivery log did not yet record when the process died goes out again, with the same
    # Message-ID. At most one per SMTP worker in flight per kill.
    assert report["duplicate_emails"] <= kills["notifications"] * SMTP_CONCURRENCY
    assert report["poison_missing"] == {}, report["poison_missing"]
    assert set(kills) == set(SERVICES)


async def audit(
    stack: Stack,
    kafka: PrivateKafka,
    inbox: Inbox,
    run: Run,
    portals: dict[str, Portal],
    expected_mails: dict[str, int],
) -> dict[str, Any]:
    flows = list(run.flows.values())
    lost: list[str] = []
    not_final: list[str] = []
    numbers: dict[str, list[int]] = defaultdict(list)
    duplicate_invoices = 0
    double_charges = 0
    charges_total = 0
    uncharged: list[str] = []
    gate = asyncio.Semaphore(16)

    async def check(flow: Flow) -> None:
        nonlocal duplicate_invoices, double_charges, charges_total
        async with gate:
            portal = portals[flow.seller_id]
            response = await portal.call("orders", "GET", f"/v1/orders/{flow.order_id}")
            if response.status_code == 404:
                lost.append(flow.order_id)
                return
            order = response.json()
            if flow.reject:
                if order["status"] != "rejected":
                    not_final.append(f"{flow.order_id}: {order['status']} (rejected expected)")
            elif (order["status"], order.get("payment_status")) != ("approved", "paid"):
                not_final.append(
                    f"{flow.order_id}: {order['status']}/{order.get('payment_status')}"
                    " (paid expected)"
                )
            invoices = await portal.ok(
                "invoicing", "GET", "/v1/invoices", params={"order_id": flow.order_id}
            )
            numbered = [i for i in invoices["items"] if i.get("number")]
            duplicate_invoices += max(0, len(numbered) - 1)
            for invoice in numbered:
                numbers[flow.seller_id].append(int(invoice["number"].removeprefix("INV-")))
                charges = await stack.charges(invoice["invoice_id"])
                succeeded = [c for c in charges if c["status"] == "succeeded"]
                charges_total += len(charges)
                double_charges += max(0, len(succeeded) - 1)
                if not succeeded:
                    uncharged.append(invoice["invoice_id"])

    await asyncio.gather(*(check(flow) for flow in flows))
    gaps = {
        seller: sorted(found)
        for seller, found in numbers.items()
        if sorted(found) != list(range(1, len(found) + 1))
    }
    listed = 0
    for portal in portals.values():
        listing = await portal.ok("orders", "GET", "/v1/orders", params={"page_size": 1})
        listed += listing["total_count"]

    by_message: Counter[tuple[str, str]] = Counter()
    templates: Counter[str] = Counter()
    for mail in inbox.all():
        for to in mail.to:
            by_message[(to, mail.message_id)] += 1
            templates[template_of(mail)] += 1
    duplicate_emails = sum(n - 1 for n in by_message.values())
    distinct: Counter[str] = Counter(to for to, _ in by_message)
    missing_emails = sum(max(0, n - distinct[to]) for to, n in expected_mails.items())

    poison_missing: dict[str, list[str]] = {}
    poison_copies: dict[str, int] = {}
    for topic in CONSUMED_TOPICS:
        keys = await dead_lettered(stack, kafka.bootstrap, topic)
        readers = len(topic.readers)
        short = [key.decode() for key in run.poison[topic.name] if keys[key] < readers]
        if short:
            poison_missing[topic.name] = short
        poison_copies[topic.name] = sum(keys[key] for key in run.poison[topic.name])
    return {
        "orders": len(flows),
        "rejected": sum(f.reject for f in flows),
        "errors": [f"{f.order_id}: {f.error}" for f in flows if f.error],
        "lost": len(lost),
        "lost_traces": await trace_lost(stack, kafka.bootstrap, lost),
        "not_final": not_final,
        "extra_orders": listed - len(flows),
        "invoices": sum(len(v) for v in numbers.values()),
        "duplicate_invoices": duplicate_invoices,
        "gaps": gaps,
        "charges": charges_total,
        "double_charges": double_charges,
        "uncharged": uncharged,
        "emails": sum(by_message.values()),
        "duplicate_emails": duplicate_emails,
        "missing_emails": missing_emails,
        "templates": dict(templates),
        "poison_sent": sum(len(v) for v in run.poison.values()),
        "poison_copies": poison_copies,
        "poison_missing": poison_missing,
    }


async def trace_lost(stack: Stack, bootstrap: str, order_ids: list[str]) -> list[str]:
    """Where each order the orders service does not know went: whether checkout's record is
    on `orders.placed` (the broker kept what it acknowledged) or its DLQ (the service refused
    it), and every line of the services' logs that names it."""
    if not order_ids:
        return []
    placed = await keys_on(bootstrap, stack.topic_prefix + ORDERS_PLACED.name)
    refused = await dead_lettered(stack, bootstrap, ORDERS_PLACED)
    logs = [
        (process.name, process.log_path.read_text(errors="replace").splitlines())
        for process in stack.processes.values()
        if process.log_path.exists()
    ]
    traces = []
    for order_id in order_ids:
        key = order_id.encode()
        lines = [
            f"    {name}: {line[:300]}"
            for name, log_lines in logs
            for line in log_lines
            if order_id in line
        ]
        traces.append(
            f"{order_id}: {placed[key]} on orders.placed, {refused[key]} on its DLQ, "
            f"{len(lines)} log lines" + "".join(f"\n{line}" for line in lines[:20])
        )
    return traces


def print_summary(
    run: Run, report: dict[str, Any], kills: Counter[str], drain: float, stack: Stack
) -> None:
    start = min(f.started for f in run.faults)
    lines = [
        "",
        f"=== fault suite (seed {SEED}) ===",
        "faults (seconds from the first):",
    ]
    for fault in run.faults:
        note = f"FAILED {fault.failed}" if fault.failed else fault.note
        lines.append(f"  +{fault.started - start:6.1f}s  {fault.kind:<22} {note}")
    rows = [
        ("orders placed", report["orders"]),
        ("  of which rejected", report["rejected"]),
        ("orders lost", report["lost"]),
        ("orders not in final state", len(report["not_final"])),
        ("orders stored but never placed", report["extra_orders"]),
        ("portal flows failed", len(report["errors"])),
        ("invoices issued", report["invoices"]),
        ("duplicate invoices", report["duplicate_invoices"]),
        ("sellers with number gaps", len(report["gaps"])),
        ("charges at the sandbox", report["charges"]),
        ("double charges", report["double_charges"]),
        ("invoices never charged", len(report["uncharged"])),
        ("emails received", report["emails"]),
        ("duplicate emails (same Message-ID)", report["duplicate_emails"]),
        (
            "  bound: notifications kills x SMTP_CONCURRENCY",
            kills["notifications"] * SMTP_CONCURRENCY,
        ),
        ("missing emails", report["missing_emails"]),
        ("poison messages put", report["poison_sent"]),
        ("poison copies in DLQs (one per group)", sum(report["poison_copies"].values())),
        ("poison missing from a DLQ", sum(len(v) for v in report["poison_missing"].values())),
        ("kills per service", dict(kills)),
        ("portal retries (service down)", run.stats.retries),
        ("  of which 409 request_in_progress", run.stats.in_progress),
        ("checkout re-publishes (broker down)", run.place_retries),
        (
            "checkout producers replaced (no acknowledgement in 15 s)",
            run.checkout_producers_replaced,
        ),
        ("service starts that exited (broker down)", dict(run.failed_starts)),
        ("drain after last fault (s)", f"{drain:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    lines += [f"lost: {trace}" for trace in report["lost_traces"]]
    lines.append(f"service logs: {stack.log_dir}")
    print("\n".join(lines))

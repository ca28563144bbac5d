"""Card tokens, JWTs and the SMTP password never leave the services: not in their logs, the
events they publish, their error bodies, /metrics or the emails, over a full run (an order paid
by `tok_visa` is accepted, invoiced through preview and confirm, and charged)."""

from __future__ import annotations

import io

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from juniper_testkit import bearer, kafka_options

from .stack import SMTP_PASSWORD, Stack
from .support import client, eventually, issued_invoice, placed, produce, record_of, run, ungate

pytestmark = pytest.mark.integration

SELLER = "seller-secrets"
CARD_TOKEN = "tok_visa"
PUBLISHED = ("orders.events", "invoices.events", "payments.events")


@pytest.fixture(scope="module")
def stack(linked_stack: Stack) -> Stack:
    return linked_stack


async def _read_all(bootstrap: str, topic: str) -> list[bytes]:
    """Every record value and header of `topic` up to its end now (none if it does not exist)."""
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap, "ops"), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, partition) for partition in partitions]
        if not assigned:
            return []
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        found: list[bytes] = []
        while any([await consumer.position(tp) < ends[tp] for tp in assigned]):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    found.append(record.value or b"")
                    found += [value or b"" for _, value in record.headers or ()]
        return found
    finally:
        await consumer.stop()


def test_no_secret_leaves_a_service(stack: Stack, service_logs: io.StringIO) -> None:
    headers = bearer(SELLER)
    token = headers["Authorization"].removeprefix("Bearer ")
    order = placed(SELLER, token=CARD_TOKEN)

    async def full_run() -> list[str]:
        await ungate(stack, SELLER)
        await produce(
            stack.kafka_bootstrap, stack.topic("orders", "orders.placed"), [record_of(order)]
        )
        invoice_id = await issued_invoice(stack, order)
        async with client(stack, "invoicing", SELLER) as invoicing:

            async def paid() -> str:
                return str((await invoicing.get(f"/v1/invoices/{invoice_id}")).json()["status"])

            await eventually(paid, "paid")
        seen: list[str] = []
        # What the seller reads, and requests that fail on the order that holds the card:
        # neither may show what the system keeps (a request's own input is not searched).
        order_url = stack.urls["orders"] + f"/v1/orders/{order.data.order_id}"
        async with httpx.AsyncClient(timeout=30) as http:
            reads = [
                order_url,
                stack.urls["orders"] + "/v1/orders",
                stack.urls["invoicing"] + f"/v1/invoices/{invoice_id}",
                stack.urls["payments"] + f"/v1/payments?invoice_id={invoice_id}",
                stack.urls["notifications"] + f"/v1/notifications?order_id={order.data.order_id}",
            ]
            for url in reads:
                answer = await http.get(url, headers=headers)
                assert answer.status_code == 200, answer.text
                seen.append(answer.text)
            failing = [
                ("POST", order_url + "/accept", {}),
                ("POST", order_url + "/reject", {"json": {"reason": "other"}}),
                ("POST", order_url + "/split", {"json": {"line_ids": ["nope"]}}),
                (
                    "PATCH",
                    order_url + "/items",
                    {"json": {"items": [{"line_id": "x", "quantity": 0}]}},
                ),
                ("POST", order_url + "/cancel", {}),
                (
                    "POST",
                    stack.urls["invoicing"] + f"/v1/orders/{order.data.order_id}/invoice/preview",
                    {"json": {"shipping": {}}},
                ),
                ("POST", stack.urls["payments"] + f"/v1/invoices/{invoice_id}/payment/retry", {}),
            ]
            for method, url, options in failing:
                answer = await http.request(method, url, headers=headers, **options)
                assert answer.status_code >= 400, answer.text
                seen.append(answer.text)
            for bad in (f"Bearer {token}x", f"Bearer {token[:-3]}"):
                answer = await http.get(
                    stack.urls["orders"] + "/v1/orders", headers={"Authorization": bad}
                )
                assert answer.status_code == 401
                seen.append(answer.text)
            for service in stack.urls:
                seen.append((await http.get(stack.urls[service] + "/metrics")).text)
        for name in PUBLISHED:
            for topic in (name, f"{name}.dlq"):
                values = await _read_all(stack.kafka_bootstrap, stack.topic("orders", topic))
                seen += [value.decode("utf-8", "replace") for value in values]
        return seen

    seen = run(full_run())
    assert stack.inbox is not None
    emails = [mail.message.as_string() for mail in stack.inbox.received]
    captured = service_logs.getvalue()
    # What is searched really holds the run: the events, the emails and the logs.
    events = "\n".join(seen)
    assert order.data.order_id in events and "4242" in events
    assert emails and any(order.data.order_id in mail for mail in emails)
    assert "started" in captured
    for secret in (CARD_TOKEN, token, SMTP_PASSWORD):
        assert secret not in captured, f"{secret[:12]}... in the logs"
        assert secret not in events, f"{secret[:12]}... in events, error bodies or metrics"
        assert not any(secret in mail for mail in emails), f"{secret[:12]}... in an email"

"""A producer that Kafka stops acknowledging is replaced: the send fails as transient, the next
one goes through a new producer (aiokafka can retry forever against a stale leader)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from juniper_shared import producer as producer_module
from juniper_shared.batch_run import is_transient
from juniper_shared.producer import Producer
from juniper_shared.settings import ServiceSettings


class FakeAIOKafkaProducer:
    """Acknowledges nothing while `stuck`; every instance is kept to look at."""

    made: list[FakeAIOKafkaProducer] = []
    stuck_next = True

    def __init__(self, **_: Any) -> None:
        self.stuck = FakeAIOKafkaProducer.stuck_next
        self.sent: list[bytes] = []
        self.started = self.stopped = False
        FakeAIOKafkaProducer.made.append(self)

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True
        if self.stuck:
            await asyncio.sleep(3600)  # what a wedged producer's flush does

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[None]:
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.stuck:
            self.sent.append(value)
            acknowledged.set_result(None)
        return acknowledged


@pytest.fixture
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> type[FakeAIOKafkaProducer]:
    FakeAIOKafkaProducer.made = []
    FakeAIOKafkaProducer.stuck_next = True
    monkeypatch.setattr(producer_module, "AIOKafkaProducer", FakeAIOKafkaProducer)
    monkeypatch.setattr(asyncio, "wait_for", _bounded_wait_for(asyncio.wait_for))
    return FakeAIOKafkaProducer


def _bounded_wait_for(wait_for: Any) -> Any:
    # The old producer's stop is bounded at 10 s; a test need not wait that long.
    async def shorter(awaitable: Any, timeout: float | None) -> Any:
        return await wait_for(awaitable, timeout=None if timeout is None else min(timeout, 0.1))

    return shorter


RECORD = ("orders.events", b"order-1", b"{}", [("type", b"order.accepted")])


@pytest.fixture
async def wedged(fake_kafka: type[FakeAIOKafkaProducer]) -> Producer:
    """A started producer Kafka acknowledges nothing; any producer made after it works."""
    settings = ServiceSettings(kafka_security_protocol="PLAINTEXT")
    producer = Producer(settings, client_id="orders", delivery_deadline_seconds=0.2)
    await producer.start()
    fake_kafka.stuck_next = False
    return producer


async def test_a_send_kafka_never_acknowledges_fails_and_the_next_goes_through_a_new_producer(
    fake_kafka: type[FakeAIOKafkaProducer], wedged: Producer
) -> None:
    producer = wedged
    with pytest.raises(TimeoutError) as missed:
        await producer.send_all([RECORD])
    assert is_transient(missed.value)  # the caller tries again: a batch comes again, not a DLQ

    stuck, fresh = fake_kafka.made
    assert stuck.stopped and fresh.started
    await producer.send_all([RECORD])
    assert fresh.sent == [b"{}"]


async def test_sends_that_miss_together_replace_the_producer_once(
    fake_kafka: type[FakeAIOKafkaProducer], wedged: Producer
) -> None:
    producer = wedged
    outcomes = await asyncio.gather(
        *(producer.send_all([RECORD]) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(outcome, TimeoutError) for outcome in outcomes)
    assert len(fake_kafka.made) == 2

"""Confirmed publishing: the process's one Kafka producer and the outbox's messages on it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from juniper_shared import tracing
from juniper_shared.contracts.events import Envelope
from juniper_shared.contracts.registry import topic_of
from juniper_shared.metrics import MESSAGES_PUBLISHED
from juniper_shared.settings import ServiceSettings

log = logging.getLogger(__name__)

TYPE_HEADER = "type"

DELIVERY_DEADLINE_SECONDS = 60.0
"""How long a send may wait for Kafka's acknowledgements before the producer is replaced.

aiokafka retries a record until the broker takes it, which rides out a broker restart; but
after a restart it can keep retrying against a leader it will not look up again and never
deliver (aio-libs/aiokafka#1018). Past this deadline the send fails as transient (its caller
tries again: the relay keeps the events, a consumer's batch comes again) and the next send
goes through a new producer. Records the old one still held may arrive too: consumers are
idempotent by `event_id`."""


Header = tuple[str, bytes]


class Producer:
    """The process's one Kafka producer, set for at-least-once: idempotent, acks from all
    in-sync replicas, a few ms of batching. aiokafka directly, not FastStream's publisher: see
    docs/architecture.md, "Where FastStream is not used"."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        client_id: str,
        delivery_deadline_seconds: float = DELIVERY_DEADLINE_SECONDS,
    ) -> None:
        self._settings = settings
        self._client_id = client_id
        self._deadline = delivery_deadline_seconds
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = await self._new_producer()

    async def _new_producer(self) -> AIOKafkaProducer:
        # Created here, not in __init__: aiokafka binds to the running event loop.
        producer = AIOKafkaProducer(
            **self._settings.kafka_client_options(),
            client_id=self._client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            request_timeout_ms=15_000,
        )
        await producer.start()
        return producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def ping(self) -> None:
        """Raises unless the cluster answers a metadata request."""
        await self._started().client.fetch_all_metadata()

    def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("the producer is not started")
        return self._producer

    async def send_all(
        self, records: Iterable[tuple[str, bytes | None, bytes, list[Header]]]
    ) -> None:
        """Send (topic, key, value, headers) records; returns once Kafka acknowledged them all.
        Raises TimeoutError, and replaces the producer, past the delivery deadline."""
        producer = self._started()
        try:
            async with asyncio.timeout(self._deadline):
                # Tracing hook: a PRODUCER span per record, its context in the headers (off:
                # untouched).
                with tracing.publishing(records) as records:
                    futures = [
                        await producer.send(topic, value, key=key, headers=headers)
                        for topic, key, value, headers in records
                    ]
                    await asyncio.gather(*futures)
        except TimeoutError:
            await self._replace(producer)
            raise

    async def _replace(self, stuck: AIOKafkaProducer) -> None:
        """Swap in a new producer for the one whose sends missed the deadline: once, however
        many sends saw it miss; if Kafka cannot be reached now, the next miss tries again."""
        if self._producer is not stuck:
            return
        log.warning("Kafka acknowledged nothing for %.0f s; replacing the producer", self._deadline)
        try:
            fresh = await self._new_producer()
        except Exception:
            log.exception("could not start a new Kafka producer; keeping the old one for now")
            return
        if self._producer is not stuck:
            await fresh.stop()
            return
        self._producer = fresh
        with contextlib.suppress(Exception):
            # Its stop flushes what it holds: bounded, as that may be what hangs.
            await asyncio.wait_for(stuck.stop(), timeout=10)


@dataclass(frozen=True)
class OutgoingMessage:
    """An event ready for the wire, as the outbox stores it."""

    event_id: str
    topic: str
    key: str
    type: str
    payload: str
    trace: tracing.Carrier = ()
    """The trace context of the change that caused the event (tracing on), for the relay."""

    @classmethod
    def of(cls, event: Envelope) -> OutgoingMessage:
        return cls(
            event_id=str(event.event_id),
            topic=topic_of(event).name,
            key=event.key(),
            type=event.type,
            payload=event.model_dump_json(),
            trace=tracing.capture(),  # tracing hook: () when off
        )

    def as_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "event_id": self.event_id,
            "topic": self.topic,
            "key": self.key,
            "type": self.type,
            "payload": self.payload,
        }
        if self.trace:  # tracing: absent when off, so entries stay as they were
            document["trace"] = dict(self.trace)
        return document

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> OutgoingMessage:
        return cls(
            **{name: document[name] for name in ("event_id", "topic", "key", "type", "payload")},
            trace=tuple((document.get("trace") or {}).items()),
        )


class EventPublisher:
    """Publishes many events at once and returns only when Kafka has them all."""

    def __init__(self, producer: Producer, *, topic_prefix: str = "") -> None:
        self._producer = producer
        self._prefix = topic_prefix

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        await self._producer.send_all(
            (
                self._prefix + message.topic,
                message.key.encode(),
                message.payload.encode(),
                [
                    (TYPE_HEADER, message.type.encode()),
                    ("event_id", message.event_id.encode()),
                    # Tracing hook: the stored context becomes the PRODUCER span's parent.
                    *tracing.carrier_headers(message.trace),
                ],
            )
            for message in messages
        )
        for message in messages:
            MESSAGES_PUBLISHED.labels(message.topic, message.type).inc()

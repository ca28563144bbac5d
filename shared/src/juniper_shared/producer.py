"""Confirmed publishing: the process's one Kafka producer and the outbox's messages on it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from juniper_shared import tracing
from juniper_shared.contracts.events import Envelope
from juniper_shared.contracts.registry import topic_of
from juniper_shared.metrics import MESSAGES_PUBLISHED
from juniper_shared.settings import ServiceSettings

TYPE_HEADER = "type"


Header = tuple[str, bytes]


class Producer:
    """The process's one Kafka producer, set for at-least-once: idempotent, acks from all
    in-sync replicas, a few ms of batching. aiokafka directly, not FastStream's publisher: see
    docs/architecture.md, "Where FastStream is not used"."""

    def __init__(self, settings: ServiceSettings, *, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # Created here, not in __init__: aiokafka binds to the running event loop.
        self._producer = AIOKafkaProducer(
            **self._settings.kafka_client_options(),
            client_id=self._client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            request_timeout_ms=15_000,
        )
        await self._producer.start()

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
        """Send (topic, key, value, headers) records; returns once Kafka acknowledged them all."""
        producer = self._started()
        # Tracing hook: a PRODUCER span per record, its context in the headers (off: untouched).
        with tracing.publishing(records) as records:
            futures = [
                await producer.send(topic, value, key=key, headers=headers)
                for topic, key, value, headers in records
            ]
            await asyncio.gather(*futures)


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

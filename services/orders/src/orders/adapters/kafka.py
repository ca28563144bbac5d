"""Events published straight to Kafka, with no outbox."""

from __future__ import annotations

from collections.abc import Sequence

from juniper_shared.contracts.events import Envelope
from juniper_shared.producer import EventPublisher, OutgoingMessage


class KafkaEventSink:
    """Publishes events straight away (the ingestion path, which needs no outbox)."""

    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    async def publish(self, events: Sequence[Envelope]) -> None:
        await self._publisher.publish([OutgoingMessage.of(event) for event in events])

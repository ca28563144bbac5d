"""Kafka glue: the broker factory, batch decoding, dead letters and confirmed publishing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.message import StreamMessage
from faststream.security import SASLScram512

from juniper_shared import tracing
from juniper_shared.contracts.events import Envelope
from juniper_shared.contracts.registry import PoisonMessage, Topic, UnknownEventType, topic_of
from juniper_shared.metrics import (
    BATCH_FAILURES,
    BATCH_SECONDS,
    DEAD_LETTERS,
    MESSAGES_CONSUMED,
    MESSAGES_PUBLISHED,
    MESSAGES_SKIPPED,
)
from juniper_shared.settings import KafkaSettings, ServiceSettings

log = logging.getLogger(__name__)

TYPE_HEADER = "type"

POLL_WAIT_MS = 500
"""The longest a batch consumer's poll waits for records. It returns as soon as any are there
(aiokafka's fetcher fetches in the background), so this bounds idle wakeups, not latency."""

FETCH_GATHER_BYTES = 1 << 20
"""A consumer that waits for bigger batches (`consumer_fetch_wait_ms`) stops waiting once this
much is there."""

MAX_DEAD_LETTER_BYTES = 512 * 1024
"""A dead letter keeps at most this much of the message (Kafka refuses above 1 MiB)."""


def make_broker(settings: ServiceSettings, *, service: str) -> KafkaBroker:
    """The FastStream broker for the batch subscribers; publishing goes through `Producer`."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=broker_security(settings),
        client_id=service,
        consumer_only=True,
        request_timeout_ms=15_000,
        graceful_timeout=20.0,
        # FastStream logs every message at INFO by default, which halves throughput.
        logger=None,
    )


def broker_security(settings: KafkaSettings) -> SASLScram512 | None:
    """The settings' credentials in FastStream's terms (None: PLAINTEXT, no credentials)."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    options = settings.kafka_client_options()
    return SASLScram512(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        ssl_context=options.get("ssl_context"),
        use_ssl=settings.kafka_security_protocol == "SASL_SSL",
    )


Header = tuple[str, bytes]


class Producer:
    """The process's one Kafka producer, set for at-least-once: idempotent, acks from all
    in-sync replicas, a few ms of batching. aiokafka directly: FastStream's per-message publish
    path cost more than the rest of ingestion (profiled)."""

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


def subscribe_batch(
    broker: KafkaBroker, *topics: Topic, group_id: str, settings: ServiceSettings
) -> BatchSubscriber:
    """Register one batch subscriber (one consumer) for `topics` that commits once per batch,
    after the handler returns.

    The handler gets the batch's aiokafka records, undecoded (`batch_records_of`).
    NACK_ON_ERROR: a handler that raises (database down) makes the batch come again;
    plain ACK would commit past it and lose it. Poison never raises: it goes to the DLQ.
    `settings.consumer_fetch_wait_ms` > 0: the broker holds each fetch that long, unless a
    MiB of records is there first.
    """
    waits = settings.consumer_fetch_wait_ms > 0
    subscriber = broker.subscriber(
        *(settings.kafka_topic_prefix + topic.name for topic in topics),
        # Prefixed too: runs that share a broker must not share (and rebalance) groups.
        group_id=settings.kafka_topic_prefix + group_id,
        batch=True,
        max_records=settings.consumer_batch_size,
        batch_timeout_ms=POLL_WAIT_MS,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_poll_interval_ms=300_000,
        decoder=batch_records_of,
        # aiokafka's defaults when not waiting: answer as soon as one byte is there, else
        # after 500 ms (an idle consumer's long poll).
        fetch_min_bytes=FETCH_GATHER_BYTES if waits else 1,
        fetch_max_wait_ms=settings.consumer_fetch_wait_ms if waits else 500,
    )
    _poll_without_pausing(subscriber)
    return subscriber


def _poll_without_pausing(subscriber: BatchSubscriber) -> None:
    """Make the subscriber's poll return once records are there, and nothing else.

    FastStream's batch poll sleeps as long again as it waited whenever a poll comes back empty:
    with a short wait an idle consumer woke 25 times a second (about 20 ms of CPU a second per
    service), with a long one a record arriving during the sleep waited for it. aiokafka's
    `getmany` alone returns as soon as the background fetcher has records, so the wait can be
    long. FastStream's consume loop (`_run_consume_loop`, pinned in uv.lock) calls `get_msg`
    and polls again when it returns nothing; its errors and stop handling are unchanged.
    """
    max_records = subscriber.max_records

    async def get_msg(consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord[Any, Any], ...]:
        fetched = await consumer.getmany(timeout_ms=POLL_WAIT_MS, max_records=max_records)
        return tuple(chain.from_iterable(fetched.values()))

    subscriber.get_msg = get_msg  # type: ignore[method-assign]


async def batch_records_of(message: StreamMessage[Any]) -> tuple[ConsumerRecord[Any, Any], ...]:
    """The batch's records as the handler's body. FastStream's own decoder would JSON-parse
    every record first (decode_batch parses each once, against its contract), and a handler
    taking the message itself resolves it in a worker thread (fast_depends runs the
    synchronous context lookup there): a thread hop per batch."""
    return batch_records(message.raw_message)


BatchHandler = Callable[[list[Envelope]], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """What a service does with the events of one topic."""

    topic: Topic
    handle: BatchHandler
    handles: frozenset[str] | None = None
    """The event types `handle` takes; records of other types are skipped unparsed
    (None: every type of the topic)."""


TopicRecords = tuple[Subscription, list[ConsumerRecord[Any, Any]]]
"""One subscription and the records of its topic in a batch."""


def consume_batches(
    broker: KafkaBroker,
    subscriptions: Sequence[Subscription],
    *,
    group_id: str,
    settings: ServiceSettings,
    dead_letters: DeadLetters,
) -> None:
    """Subscribe a service to its topics with one consumer. Each batch's valid events go to
    their topic's handler, topic by topic in the order given; the offsets are committed once
    the whole batch is handled; poison goes to the DLQ; an exception redelivers the batch
    (handlers are idempotent, so a topic handled before the failure may see its events again).

    Subscriptions that share one handler get the batch's events of all their topics in one
    call, in the order given (notifications emails about order and invoice news alike: one
    call stores one set of pending emails, where a call per topic stored two).

    One consumer for all the service's topics, not one per topic: one fetch loop, one group
    member and one offset commit per batch, where a consumer per topic multiplied the broker's
    fetch and commit requests and polled on its own when idle."""
    prefix = settings.kafka_topic_prefix
    by_name = {prefix + subscription.topic.name: subscription for subscription in subscriptions}

    @subscribe_batch(
        broker,
        *(subscription.topic for subscription in subscriptions),
        group_id=group_id,
        settings=settings,
    )
    async def on_batch(records: tuple[ConsumerRecord[Any, Any], ...]) -> None:
        by_topic: dict[str, list[ConsumerRecord[Any, Any]]] = {name: [] for name in by_name}
        for record in records:
            # Only subscribed topics come; anything else is dropped rather than failing the
            # batch (and the partition) forever.
            by_topic.get(record.topic, []).append(record)
        by_handler: dict[BatchHandler, list[TopicRecords]] = {}
        for name, subscription in by_name.items():
            if by_topic[name]:
                by_handler.setdefault(subscription.handle, []).append(
                    (subscription, by_topic[name])
                )
        for handle, parts in by_handler.items():
            await _handle_topics(handle, parts, dead_letters, prefix=prefix, group_id=group_id)


async def _handle_topics(
    handle: BatchHandler,
    parts: Sequence[TopicRecords],
    dead_letters: DeadLetters,
    *,
    prefix: str,
    group_id: str,
) -> None:
    """Decode the batch's records of one or more topics and hand their valid events to the
    handler those topics share, in one call. `prefix` and `group_id` name the tracing spans'
    topic and group."""
    topics = [subscription.topic for subscription, _ in parts]
    started = time.perf_counter()
    try:
        events: list[Envelope] = []
        for subscription, records in parts:
            events += await decode_batch(
                subscription.topic, records, dead_letters, handles=subscription.handles
            )
        if events:
            consumed = [record for _, records in parts for record in records]
            # Tracing hook: CONSUMER spans parented on the records' headers (off: nothing).
            with tracing.consuming(prefix + topics[0].name, prefix + group_id, consumed, events):
                await handle(events)
    except Exception:
        for topic in topics:
            BATCH_FAILURES.labels(topic.name).inc()
        log.exception("%s batch failed; it will be redelivered", "+".join(t.name for t in topics))
        # Give a failing dependency a moment before the same batch comes again.
        await asyncio.sleep(0.5)
        raise
    elapsed = time.perf_counter() - started
    for topic in topics:
        BATCH_SECONDS.labels(topic.name).observe(elapsed)


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
            trace=tracing.capture(event.causation_id),  # tracing hook: () when off
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


class DeadLetters:
    """Sends messages no retry can fix to `<topic>.dlq`, with the reason in headers."""

    def __init__(self, producer: Producer, *, topic_prefix: str = "") -> None:
        self._producer = producer
        self._prefix = topic_prefix

    async def send(
        self, topic: Topic, poisoned: Sequence[tuple[ConsumerRecord[Any, Any], str]]
    ) -> None:
        if not poisoned:
            return
        records = []
        for record, error in poisoned:
            headers: list[Header] = [
                (name, value)
                for name, value in (record.headers or ())
                if not name.startswith("dlq-")
            ]
            headers += [
                ("dlq-error", error[:1000].encode()),
                ("dlq-source-topic", record.topic.encode()),
                ("dlq-source-partition", str(record.partition).encode()),
                ("dlq-source-offset", str(record.offset).encode()),
            ]
            value = record.value if record.value is not None else b""
            if len(value) > MAX_DEAD_LETTER_BYTES:
                # A poison message too large for the producer would fail its batch forever.
                headers.append(("dlq-truncated-from", str(len(value)).encode()))
                value = value[:MAX_DEAD_LETTER_BYTES]
            records.append((self._prefix + topic.dlq, record.key, value, headers))
        await self._producer.send_all(records)
        DEAD_LETTERS.labels(topic.name).inc(len(poisoned))
        log.warning("sent %d poison messages to %s", len(poisoned), topic.dlq)


def _header_text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", errors="replace")


def record_type(record: ConsumerRecord[Any, Any]) -> str | None:
    for name, value in record.headers or ():
        if name == TYPE_HEADER:
            return _header_text(value)
    return None


def batch_records(raw_message: Any) -> tuple[ConsumerRecord[Any, Any], ...]:
    """The aiokafka records behind a FastStream batch message."""
    if isinstance(raw_message, tuple):
        return raw_message
    return (raw_message,)


async def decode_batch(
    topic: Topic,
    records: Iterable[ConsumerRecord[Any, Any]],
    dead_letters: DeadLetters,
    *,
    handles: frozenset[str] | None = None,
) -> list[Envelope]:
    """Valid events of the types this consumer handles; poison goes to the DLQ first.

    A type named in the header that this consumer ignores is skipped without parsing.
    """
    events: list[Envelope] = []
    poisoned: list[tuple[ConsumerRecord[Any, Any], str]] = []
    skipped = 0
    for record in records:
        header_type = record_type(record)
        if handles is not None and header_type is not None and header_type not in handles:
            skipped += 1
            continue
        try:
            event = topic.decode(record.value)
        except UnknownEventType:
            skipped += 1
            continue
        except PoisonMessage as error:
            poisoned.append((record, str(error)))
            continue
        if handles is not None and event.type not in handles:
            skipped += 1
            continue
        events.append(event)
        MESSAGES_CONSUMED.labels(topic.name, event.type).inc()
    if skipped:
        MESSAGES_SKIPPED.labels(topic.name).inc(skipped)
    await dead_letters.send(topic, poisoned)
    return events

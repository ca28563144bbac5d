"""Kafka glue: the broker factory, batch decoding, dead letters and confirmed publishing."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pymongo.errors
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.message import StreamMessage
from faststream.security import SASLScram512

from juniper_shared import tracing
from juniper_shared.contracts.events import Envelope
from juniper_shared.contracts.registry import (
    ForgedEvent,
    PoisonMessage,
    Topic,
    UnknownEventType,
    topic_of,
)
from juniper_shared.errors import RetryLater
from juniper_shared.metrics import (
    BATCH_FAILURES,
    BATCH_SECONDS,
    DEAD_LETTERS,
    FORGED_EVENTS,
    MESSAGES_CONSUMED,
    MESSAGES_PUBLISHED,
    MESSAGES_SKIPPED,
)
from juniper_shared.settings import KafkaSettings, ServiceSettings

log = logging.getLogger(__name__)

TYPE_HEADER = "type"

BATCH_TIMEOUT_MS = 200
"""FastStream's batch poll: `getmany` returns as soon as records are there, else after this long,
and then FastStream sleeps this long again. So an idle consumer polls about 2.5 times a second
and a record arriving during the sleep waits at most this long (100 ms on average)."""

FETCH_GATHER_BYTES = 1 << 20
"""A consumer that waits for bigger batches (`consumer_fetch_wait_ms`) stops waiting once this
much is there."""

MAX_DEAD_LETTER_BYTES = 512 * 1024
"""A dead letter keeps at most this much of the message (Kafka refuses above 1 MiB)..."""
MAX_DEAD_LETTER_HEADER_BYTES = 64 * 1024
"""...this much of its original headers..."""
MAX_DEAD_LETTER_KEY_BYTES = 4 * 1024
"""...and this much of its key."""


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
        middlewares=tracing.broker_middlewares(),  # tracing hook: none when off
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
        batch_timeout_ms=BATCH_TIMEOUT_MS,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_poll_interval_ms=300_000,
        decoder=batch_records_of,
        # aiokafka's defaults when not waiting: answer as soon as one byte is there, else
        # after 500 ms (an idle consumer's long poll).
        fetch_min_bytes=FETCH_GATHER_BYTES if waits else 1,
        fetch_max_wait_ms=settings.consumer_fetch_wait_ms if waits else 500,
    )
    return subscriber


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


@dataclass(frozen=True)
class Delivery:
    """One consumed record and the event decoded from it."""

    topic: Topic
    record: ConsumerRecord[Any, Any]
    event: Envelope


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
    the whole batch is handled; poison goes to the DLQ. A failure is classified (`BatchRun`):
    a transient one redelivers the batch after a back-off; anything else one record causes
    goes to the DLQ with that record while the rest of the batch is applied.

    Subscriptions that share one handler get the batch's events of all their topics in one
    call, in the order given (notifications emails about order and invoice news alike: one
    call stores one set of pending emails, where a call per topic stored two).

    One consumer for all the service's topics, not one per topic: one fetch loop, one group
    member and one offset commit per batch, where a consumer per topic multiplied the broker's
    fetch and commit requests and polled on its own when idle."""
    prefix = settings.kafka_topic_prefix
    by_name = {prefix + subscription.topic.name: subscription for subscription in subscriptions}
    failures = RecordFailures(poison_after=settings.consumer_poison_after)

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
        by_handler: dict[BatchHandler, list[Delivery]] = {}
        for name, subscription in by_name.items():
            if by_topic[name]:
                by_handler.setdefault(subscription.handle, []).extend(
                    await decode_batch(
                        subscription.topic,
                        by_topic[name],
                        dead_letters,
                        handles=subscription.handles,
                    )
                )
        # Tracing hook: FastStream's CONSUMER span names the batch's events (off: nothing).
        tracing.describe_batch([d.event for each in by_handler.values() for d in each])
        for handle, deliveries in by_handler.items():
            if deliveries:
                await BatchRun(handle, deliveries, dead_letters, failures).apply()


def is_transient(error: BaseException) -> bool:
    """A failure that trying again later may cure: a dependency unreachable, slow or busy."""
    if isinstance(error, BaseExceptionGroup):
        return all(is_transient(inner) for inner in error.exceptions)
    if isinstance(error, RetryLater | TimeoutError | ConnectionError):
        return True
    if isinstance(error, pymongo.errors.ConnectionFailure | pymongo.errors.ExecutionTimeout):
        return True
    if isinstance(error, pymongo.errors.PyMongoError) and error.has_error_label(
        "RetryableWriteError"
    ):
        return True
    return isinstance(error, KafkaError) and bool(getattr(error, "retriable", False))


class RecordFailures:
    """A consumer's memory of failures: how many batches in a row failed (the back-off grows
    with it), and how many times each record failed alone, the same way, while other records
    went through. A record that does that `poison_after` times is poison whatever the failure
    looks like (a message that makes the database drop the connection looks transient)."""

    MAX_TRACKED = 10_000
    """Records tracked at once; the oldest are forgotten first (a partition that moved to
    another consumer never comes back here)."""

    def __init__(self, *, poison_after: int) -> None:
        self.poison_after = poison_after
        self.streak = 0
        self._records: dict[tuple[str, int, int], tuple[str, int]] = {}

    def count(self, record: ConsumerRecord[Any, Any], error: BaseException) -> bool:
        """Count one more failure of `record`; True once it is poison."""
        key = (record.topic, record.partition, record.offset)
        signature = f"{type(error).__qualname__}: {error}"[:200]
        previous, times = self._records.pop(key, ("", 0))
        times = times + 1 if previous == signature else 1
        self._records[key] = (signature, times)
        if len(self._records) > self.MAX_TRACKED:
            del self._records[next(iter(self._records))]
        return times >= self.poison_after

    def succeeded(self, deliveries: Iterable[Delivery]) -> None:
        self.streak = 0
        for delivery in deliveries:
            record = delivery.record
            self._records.pop((record.topic, record.partition, record.offset), None)

    async def back_off(self) -> None:
        """Give a failing dependency a moment before the batch comes again: 0.5 s, doubling
        up to 8 s, with jitter so replicas do not retry in step."""
        self.streak += 1
        await asyncio.sleep(min(8.0, 0.5 * 2 ** (self.streak - 1)) * random.uniform(0.8, 1.2))


class BatchRun:
    """One handler applied to one batch's events, with failures classified.

    When the batch fails transiently (a dependency down or busy), it comes again after a
    back-off. Any other failure, or a transient one `poison_after` times in a row, and its
    events are applied one at a time, in order, to find the record at fault:
    - a record failing alone with a non-transient error goes to the DLQ with the reason;
    - a record failing alone transiently while other records go through is counted, and goes
      to the DLQ once it has failed that way `poison_after` times;
    - when nothing goes through, the fault cannot be told from a dependency being down:
      nothing is counted, and the batch comes again.
    The rest of the batch is applied and the offset moves on. Handlers are idempotent, so
    events applied before a failure may be applied again."""

    def __init__(
        self,
        handle: BatchHandler,
        deliveries: list[Delivery],
        dead_letters: DeadLetters,
        failures: RecordFailures,
    ) -> None:
        self._handle = handle
        self._deliveries = deliveries
        self._dead_letters = dead_letters
        self._failures = failures
        self._topics = sorted({delivery.topic.name for delivery in deliveries})

    @property
    def name(self) -> str:
        return "+".join(self._topics)

    async def apply(self) -> None:
        started = time.perf_counter()
        try:
            await self._handle([delivery.event for delivery in self._deliveries])
        except Exception as error:
            for topic in self._topics:
                BATCH_FAILURES.labels(topic).inc()
            if is_transient(error) and self._failures.streak < self._failures.poison_after:
                log.warning("%s batch failed (%r); it will be redelivered", self.name, error)
                await self._failures.back_off()
                raise
            log.warning("%s batch failed (%r); applying its records one by one", self.name, error)
            await self._apply_one_by_one()
        self._failures.succeeded(self._deliveries)
        elapsed = time.perf_counter() - started
        for topic in self._topics:
            BATCH_SECONDS.labels(topic).observe(elapsed)

    async def _apply_one_by_one(self) -> None:
        poisoned: list[tuple[Delivery, BaseException]] = []
        transient: list[tuple[Delivery, BaseException]] = []
        applied = 0
        for delivery in self._deliveries:
            try:
                await self._handle([delivery.event])
                applied += 1
            except Exception as error:
                if not is_transient(error):
                    poisoned.append((delivery, error))
                    continue
                transient.append((delivery, error))
                if not applied and (len(transient) == 2 or len(self._deliveries) == 1):
                    # Nothing went through: a dependency down looks just like this.
                    await self._failures.back_off()
                    raise RetryLater(f"{self.name}: nothing could be applied") from error
        retry = []
        for delivery, failure in transient:
            if self._failures.count(delivery.record, failure):
                poisoned.append((delivery, failure))
            else:
                retry.append(delivery)
        await self._dead_letters.refuse(poisoned)
        if retry:
            # The poison is out; what failed transiently comes again with its batch.
            await self._failures.back_off()
            raise RetryLater(f"{len(retry)} events of the {self.name} batch will be retried")


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


class DeadLetters:
    """Sends messages no retry can fix to `<topic>.dlq`, with the reason in headers.

    A dead letter always fits its topic: the value is cut at MAX_DEAD_LETTER_BYTES, the key
    at MAX_DEAD_LETTER_KEY_BYTES, and the original headers are kept only up to
    MAX_DEAD_LETTER_HEADER_BYTES (a copy that no longer fit would fail its batch forever)."""

    def __init__(self, producer: Producer, *, topic_prefix: str = "") -> None:
        self._producer = producer
        self._prefix = topic_prefix

    async def refuse(self, poisoned: Sequence[tuple[Delivery, BaseException]]) -> None:
        """Dead-letter decoded records that their handler could not apply."""
        by_topic: dict[Topic, list[tuple[ConsumerRecord[Any, Any], BaseException]]] = {}
        for delivery, error in poisoned:
            by_topic.setdefault(delivery.topic, []).append((delivery.record, error))
        for topic, records in by_topic.items():
            await self.send(topic, records)

    async def send(
        self, topic: Topic, poisoned: Sequence[tuple[ConsumerRecord[Any, Any], BaseException]]
    ) -> None:
        if not poisoned:
            return
        records = []
        for record, error in poisoned:
            if isinstance(error, ForgedEvent):
                FORGED_EVENTS.labels(topic.name).inc()
            records.append((self._prefix + topic.dlq, *_dead_letter(record, error)))
        await self._producer.send_all(records)
        DEAD_LETTERS.labels(topic.name).inc(len(poisoned))
        log.warning(
            "sent %d poison messages to %s (first: %s)",
            len(poisoned),
            topic.dlq,
            _reason(poisoned[0][1])[:200],
        )


def _reason(error: BaseException) -> str:
    if isinstance(error, PoisonMessage):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _dead_letter(
    record: ConsumerRecord[Any, Any], error: BaseException
) -> tuple[bytes | None, bytes, list[Header]]:
    """The key, value and headers of `record`'s dead-letter copy."""
    headers: list[Header] = []
    kept_bytes = 0
    dropped = 0
    for name, value in record.headers or ():
        size = len(name) + len(value or b"")
        if name.startswith("dlq-") or kept_bytes + size > MAX_DEAD_LETTER_HEADER_BYTES:
            dropped += not name.startswith("dlq-")
            continue
        kept_bytes += size
        headers.append((name, value))
    headers += [
        ("dlq-error", _reason(error)[:1000].encode()),
        ("dlq-source-topic", record.topic.encode()),
        ("dlq-source-partition", str(record.partition).encode()),
        ("dlq-source-offset", str(record.offset).encode()),
    ]
    if dropped:
        headers.append(("dlq-headers-dropped", str(dropped).encode()))
    key = record.key
    if key is not None and len(key) > MAX_DEAD_LETTER_KEY_BYTES:
        headers.append(("dlq-key-truncated-from", str(len(key)).encode()))
        key = key[:MAX_DEAD_LETTER_KEY_BYTES]
    value = record.value if record.value is not None else b""
    if len(value) > MAX_DEAD_LETTER_BYTES:
        headers.append(("dlq-truncated-from", str(len(value)).encode()))
        value = value[:MAX_DEAD_LETTER_BYTES]
    return key, value, headers


def _header_text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", errors="replace")


def record_type(record: ConsumerRecord[Any, Any]) -> str | None:
    for name, value in record.headers or ():
        if name == TYPE_HEADER:
            return _header_text(value)
    return None


def batch_records(raw_message: Any) -> tuple[ConsumerRecord[Any, Any], ...]:
    """The aiokafka records behind a FastStream batch message (a tuple from Kafka, a list from
    FastStream's TestKafkaBroker)."""
    if isinstance(raw_message, tuple | list):
        return tuple(raw_message)
    return (raw_message,)


async def decode_batch(
    topic: Topic,
    records: Iterable[ConsumerRecord[Any, Any]],
    dead_letters: DeadLetters,
    *,
    handles: frozenset[str] | None = None,
) -> list[Delivery]:
    """Valid events of the types this consumer handles; poison (forged events included) goes
    to the DLQ first.

    A type named in the header that this consumer ignores is skipped without parsing.
    """
    deliveries: list[Delivery] = []
    poisoned: list[tuple[ConsumerRecord[Any, Any], BaseException]] = []
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
            poisoned.append((record, error))
            continue
        if handles is not None and event.type not in handles:
            skipped += 1
            continue
        deliveries.append(Delivery(topic, record, event))
        MESSAGES_CONSUMED.labels(topic.name, event.type).inc()
    if skipped:
        MESSAGES_SKIPPED.labels(topic.name).inc(skipped)
    await dead_letters.send(topic, poisoned)
    return deliveries

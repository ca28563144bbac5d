"""Kafka consumers: the broker factory and one batch subscriber per service, its records
decoded against the contracts, poison to the dead letters, valid events to their handlers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.message import StreamMessage
from faststream.security import SASLScram512

from juniper_shared import tracing
from juniper_shared.batch_run import BatchHandler, BatchRun, Delivery, RecordFailures
from juniper_shared.contracts.registry import PoisonMessage, Topic, UnknownEventType
from juniper_shared.dead_letters import DeadLetters
from juniper_shared.metrics import MESSAGES_CONSUMED, MESSAGES_SKIPPED
from juniper_shared.producer import TYPE_HEADER
from juniper_shared.settings import KafkaSettings, ServiceSettings

__all__ = [
    "DeadLetters",
    "Subscription",
    "batch_records",
    "batch_records_of",
    "broker_security",
    "consume_batches",
    "decode_batch",
    "make_broker",
    "record_type",
    "subscribe_batch",
]
"""`DeadLetters` too: a service hands `consume_batches` the dead letters its poison goes to."""

BATCH_TIMEOUT_MS = 200
"""FastStream's batch poll: `getmany` returns as soon as records are there, else after this long,
and then FastStream sleeps this long again. So an idle consumer polls about 2.5 times a second
and a record arriving during the sleep waits at most this long (100 ms on average)."""

FETCH_GATHER_BYTES = 1 << 20
"""A consumer that waits for bigger batches (`consumer_fetch_wait_ms`) stops waiting once this
much is there."""


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


@dataclass(frozen=True)
class Subscription:
    """What a service does with the events of one topic."""

    topic: Topic
    handle: BatchHandler
    handles: frozenset[str] | None = None
    """The event types `handle` takes; records of other types are skipped unparsed
    (None: every type of the topic)."""


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

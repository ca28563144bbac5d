"""One handler applied to one consumed batch, its failures classified: redeliver or dead-letter."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pymongo.errors
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError

from juniper_shared.contracts.events import Envelope
from juniper_shared.contracts.registry import Topic
from juniper_shared.dead_letters import DeadLetters
from juniper_shared.errors import RetryLater
from juniper_shared.metrics import BATCH_FAILURES, BATCH_SECONDS

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[Envelope]], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    """One consumed record and the event decoded from it."""

    topic: Topic
    record: ConsumerRecord[Any, Any]
    event: Envelope


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
        by_topic: dict[Topic, list[tuple[ConsumerRecord[Any, Any], BaseException]]] = {}
        for delivery, reason in poisoned:
            by_topic.setdefault(delivery.topic, []).append((delivery.record, reason))
        for topic, records in by_topic.items():
            await self._dead_letters.send(topic, records)
        if retry:
            # The poison is out; what failed transiently comes again with its batch.
            await self._failures.back_off()
            raise RetryLater(f"{len(retry)} events of the {self.name} batch will be retried")

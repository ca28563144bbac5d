"""Consumer lag as a metric: how far each group's committed offset is behind the partition end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker

from juniper_shared.metrics import CONSUMER_LAG
from juniper_shared.settings import KafkaSettings

log = logging.getLogger(__name__)


class LagMonitor:
    """Every `interval` seconds, sets `jm_consumer_lag{group,topic,partition}` for each batch
    subscriber of the broker (topic and group without the test prefix)."""

    def __init__(
        self, broker: KafkaBroker, *, kafka: KafkaSettings, prefix: str, interval: float = 15.0
    ) -> None:
        self._broker = broker
        self._kafka = kafka
        self._prefix = prefix
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="consumer-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _subscriptions(self) -> list[tuple[str, str]]:
        found = []
        for subscriber in self._broker.subscribers:
            group: Any = getattr(subscriber, "group_id", None)
            for topic in getattr(subscriber, "topic_names_for_subscribe", []):
                if group:
                    found.append((str(group), str(topic)))
        return found

    async def _run(self) -> None:
        options = self._kafka.kafka_client_options()
        admin = AIOKafkaAdminClient(**options)
        ends = AIOKafkaConsumer(**options, enable_auto_commit=False)
        try:
            await admin.start()
            await ends.start()
            while True:
                try:
                    await self.measure_once(admin, ends)
                except Exception as error:  # lag is best effort; never take the service down
                    log.warning("consumer lag not measured: %s", type(error).__name__)
                await asyncio.sleep(self._interval)
        finally:
            await ends.stop()
            await admin.close()

    async def measure_once(self, admin: AIOKafkaAdminClient, ends: AIOKafkaConsumer) -> None:
        for group, topic in self._subscriptions():
            partitions = ends.partitions_for_topic(topic)
            if partitions is None:
                await ends._client.force_metadata_update()
                partitions = ends.partitions_for_topic(topic) or set()
            assigned = [TopicPartition(topic, partition) for partition in sorted(partitions)]
            if not assigned:
                continue
            committed = await admin.list_consumer_group_offsets(group, partitions=assigned)
            end_offsets = await ends.end_offsets(assigned)
            for partition in assigned:
                position = committed.get(partition)
                offset = position.offset if position is not None and position.offset >= 0 else 0
                CONSUMER_LAG.labels(
                    group.removeprefix(self._prefix),
                    topic.removeprefix(self._prefix),
                    str(partition.partition),
                ).set(max(0, end_offsets[partition] - offset))

"""Consumer lag on /metrics: the gap between a group's committed offset and the partition end."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker
from juniper_shared.kafka import broker_security
from juniper_shared.lag import LagMonitor
from juniper_testkit import kafka_settings, publish_raw
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration


async def test_unconsumed_messages_show_as_lag(infra: Any, unique: str) -> None:
    prefix = f"t{unique}."
    topic = prefix + "lagging"
    # as the super user: a topic of the test's own, created by producing to it
    await publish_raw(infra.kafka_bootstrap, topic, [(b"k", b"x")] * 7, principal="admin")
    broker = KafkaBroker(
        infra.kafka_bootstrap,
        security=broker_security(kafka_settings(infra.kafka_bootstrap, "admin")),
        logger=None,
    )

    @broker.subscriber(topic, group_id=prefix + "slow-group", batch=True)
    async def never_started(body: Any) -> None:  # registered, never run: nothing is committed
        pass

    monitor = LagMonitor(
        broker, kafka=kafka_settings(infra.kafka_bootstrap, "admin"), prefix=prefix
    )
    admin = AIOKafkaAdminClient(**infra.kafka())
    ends = AIOKafkaConsumer(**infra.kafka())
    await admin.start()
    await ends.start()
    try:
        await monitor.measure_once(admin, ends)
    finally:
        await ends.stop()
        await admin.close()
    lag = sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "jm_consumer_lag"
        for sample in metric.samples
        if sample.labels.get("topic") == "lagging" and sample.labels.get("group") == "slow-group"
    )
    assert lag == 7

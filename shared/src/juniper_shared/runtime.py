"""What every service process holds: database, broker, outbox relay; started and drained in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from juniper_shared import tracing
from juniper_shared.dead_letters import DeadLetters
from juniper_shared.kafka import make_broker
from juniper_shared.lag import LagMonitor
from juniper_shared.mongo import Document, make_mongo_client
from juniper_shared.outbox import OutboxRelay
from juniper_shared.producer import EventPublisher, Producer
from juniper_shared.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    service: str
    settings: ServiceSettings
    client: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    broker: KafkaBroker
    producer: Producer
    publisher: EventPublisher
    dead_letters: DeadLetters
    relay: OutboxRelay
    lag: LagMonitor

    @classmethod
    def create(
        cls, settings: ServiceSettings, *, service: str, outbox_collections: Sequence[str]
    ) -> Runtime:
        client = make_mongo_client(settings, app_name=service)
        db = client[settings.mongodb_database or service]
        broker = make_broker(settings, service=service)
        producer = Producer(settings, client_id=service)
        publisher = EventPublisher(producer, topic_prefix=settings.kafka_topic_prefix)
        relay = OutboxRelay(
            publisher,
            {name: db[name] for name in outbox_collections},
            poll_seconds=settings.outbox_poll_seconds,
        )
        return cls(
            service=service,
            settings=settings,
            client=client,
            db=db,
            broker=broker,
            publisher=publisher,
            producer=producer,
            dead_letters=DeadLetters(producer, topic_prefix=settings.kafka_topic_prefix),
            relay=relay,
            lag=LagMonitor(
                broker,
                kafka=settings,
                prefix=settings.kafka_topic_prefix,
                interval=settings.lag_interval_seconds,
            ),
        )

    def lifespan(
        self,
        on_start: Callable[[], Awaitable[None]] | None = None,
        on_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> Callable[[FastAPI], Any]:
        """Start: database setup, broker, relay. Stop (SIGTERM): stop consuming, let in-flight
        batches finish, flush the outbox, run `on_stop`, then close the producer and the
        database."""

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            if on_start is not None:
                await on_start()
            await self.relay.create_indexes()
            await self.producer.start()
            await self.broker.start()
            self.relay.start()
            self.lag.start()
            log.info("%s started", self.service)
            try:
                yield
            finally:
                await self.lag.stop()
                await asyncio.gather(*(subscriber.stop() for subscriber in self.broker.subscribers))
                try:
                    await self.relay.stop()
                    if on_stop is not None:
                        await on_stop()
                finally:
                    await self.broker.stop()
                    await self.producer.stop()
                    await self.client.close()
                    if tracing.enabled():  # tracing hook: export the spans still buffered
                        await asyncio.to_thread(tracing.shutdown)
                log.info("%s stopped", self.service)

        return lifespan

    def readiness(self) -> list[Callable[[], Awaitable[None]]]:
        async def database() -> None:
            await self.client.admin.command("ping")

        async def kafka() -> None:
            await self.producer.ping()

        return [database, kafka]

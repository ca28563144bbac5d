"""The composition root: wires settings, adapters, handlers and entrypoints into one app."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from juniper_shared.clock import utc_now
from juniper_shared.http import create_app, run_service
from juniper_shared.idempotency import IdempotencyKeys
from juniper_shared.runtime import Runtime

from orders.adapters.customers import MongoCustomers, MongoSellerSettings
from orders.adapters.kafka import KafkaEventSink
from orders.adapters.lease import LEASES, MongoLease
from orders.adapters.mongo import ORDERS, MongoOrders, create_indexes
from orders.application.commands import SellerCommands
from orders.application.expiry import ExpirySweep
from orders.application.ingestion import Ingestion
from orders.application.invoice_events import InvoiceEvents
from orders.entrypoints.http import build_router
from orders.entrypoints.kafka import register_subscribers
from orders.entrypoints.schedule import ExpirySweeper
from orders.settings import OrdersSettings

SERVICE = "orders"


def build_app(settings: OrdersSettings, *, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    runtime = Runtime.create(settings, service=SERVICE, outbox_collections=[ORDERS])
    orders = MongoOrders(runtime.db, runtime.relay)
    customers = MongoCustomers(runtime.db)
    seller_settings = MongoSellerSettings(runtime.db)
    commands = SellerCommands(orders, customers, seller_settings, clock=clock)
    ingestion = Ingestion(
        orders, customers, seller_settings, KafkaEventSink(runtime.publisher), clock=clock
    )
    sweeper = ExpirySweeper(
        ExpirySweep(orders, seller_settings, clock=clock),
        MongoLease(
            runtime.db[LEASES],
            name="order-expiry",
            owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
            ttl=timedelta(seconds=settings.lease_seconds()),
            clock=clock,
        ),
        every=settings.expiry_sweep_seconds,
        page_size=settings.expiry_page_size,
        clock=clock,
    )
    register_subscribers(
        runtime.broker,
        ingestion,
        InvoiceEvents(orders, clock=clock),
        runtime.dead_letters,
        settings,
    )

    async def on_start() -> None:
        await create_indexes(runtime.db)

    idempotency = IdempotencyKeys(runtime.db["idempotency_keys"])
    app = create_app(
        title="JuniperMarket Orders",
        version="1.0.0",
        description="Placed orders, the seller's decisions and edits, customers and settings.",
        jwt_secret=settings.auth_jwt_secret.get_secret_value(),
        max_token_ttl_seconds=settings.auth_max_token_ttl_seconds,
        lifespan=sweeping(runtime.lifespan(on_start, on_stop=idempotency.flush), sweeper),
        readiness=runtime.readiness(),
    )
    app.state.runtime = runtime
    app.state.commands = commands
    app.state.sweeper = sweeper
    app.include_router(build_router(commands, idempotency))

    return app


Lifespan = Callable[[FastAPI], Any]


def sweeping(lifespan: Lifespan, sweeper: ExpirySweeper) -> Lifespan:
    """The service's lifespan with the expiry sweeper running inside it: started once everything
    it writes through is up, stopped (SIGTERM) before any of it is drained."""

    @asynccontextmanager
    async def with_sweeper(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            sweeper.start()
            try:
                yield
            finally:
                await sweeper.stop()

    return with_sweeper


def main() -> None:
    run_service(SERVICE, OrdersSettings(), build_app)

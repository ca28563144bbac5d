"""The composition root: wires settings, adapters, handlers and entrypoints into one app."""

from __future__ import annotations

from fastapi import FastAPI
from juniper_shared.http import create_app, run_service
from juniper_shared.idempotency import IdempotencyKeys
from juniper_shared.runtime import Runtime

from orders.adapters.mongo import (
    ORDERS,
    KafkaEventSink,
    MongoCustomers,
    MongoOrders,
    MongoSellerSettings,
    create_indexes,
)
from orders.application.handlers import OrdersHandlers
from orders.entrypoints.http import build_router
from orders.entrypoints.kafka import register_subscribers
from orders.settings import OrdersSettings

SERVICE = "orders"


def build_app(settings: OrdersSettings) -> FastAPI:
    runtime = Runtime.create(settings, service=SERVICE, outbox_collections=[ORDERS])
    handlers = OrdersHandlers(
        orders=MongoOrders(runtime.db, runtime.relay),
        customers=MongoCustomers(runtime.db),
        seller_settings=MongoSellerSettings(runtime.db),
        publisher=KafkaEventSink(runtime.publisher),
    )
    register_subscribers(runtime.broker, handlers, runtime.dead_letters, settings)

    async def on_start() -> None:
        await create_indexes(runtime.db)

    idempotency = IdempotencyKeys(runtime.db["idempotency_keys"])
    app = create_app(
        title="JuniperMarket Orders",
        version="1.0.0",
        description="Placed orders, the seller's decisions and edits, customers and settings.",
        jwt_secret=settings.auth_jwt_secret.get_secret_value(),
        max_token_ttl_seconds=settings.auth_max_token_ttl_seconds,
        lifespan=runtime.lifespan(on_start, on_stop=idempotency.flush),
        readiness=runtime.readiness(),
    )
    app.state.runtime = runtime
    app.state.handlers = handlers
    app.include_router(build_router(handlers, idempotency))

    return app


def main() -> None:
    run_service(SERVICE, OrdersSettings(), build_app)

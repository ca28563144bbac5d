"""The composition root: wires settings, adapters, handlers and entrypoints into one app."""

from __future__ import annotations

from fastapi import FastAPI
from juniper_shared.http import create_app, run_service
from juniper_shared.idempotency import IdempotencyKeys
from juniper_shared.runtime import Runtime

from invoicing.adapters.mongo import (
    INVOICES,
    MongoInvoices,
    MongoOrderBook,
    create_indexes,
)
from invoicing.application.catch_up import OrderVersions
from invoicing.application.numbering import Numbering
from invoicing.application.preview import Previews
from invoicing.application.reactions import Reactions
from invoicing.entrypoints.http import build_router
from invoicing.entrypoints.kafka import register_subscribers
from invoicing.settings import InvoicingSettings

SERVICE = "invoicing"


def build_app(settings: InvoicingSettings) -> FastAPI:
    runtime = Runtime.create(settings, service=SERVICE, outbox_collections=[INVOICES])
    orders, invoices = MongoOrderBook(runtime.db), MongoInvoices(runtime.db, runtime.relay)
    base_url = settings.base_url()
    # The consumer hands each order version it stores to the previews waiting for it.
    versions = OrderVersions()
    previews = Previews(orders, invoices, base_url, versions=versions)
    numbering = Numbering(orders, invoices, base_url)
    register_subscribers(
        runtime.broker,
        Reactions(orders, invoices, base_url, versions=versions),
        runtime.dead_letters,
        settings,
        orders_events_lag=settings.invoicing_orders_events_lag_seconds,
    )

    async def on_start() -> None:
        await create_indexes(runtime.db)

    idempotency = IdempotencyKeys(runtime.db["idempotency_keys"])
    app = create_app(
        title="JuniperMarket Invoicing",
        version="1.0.0",
        description="Invoice previews, gapless per-seller numbers, documents, payment outcome.",
        jwt_secret=settings.auth_jwt_secret.get_secret_value(),
        max_token_ttl_seconds=settings.auth_max_token_ttl_seconds,
        lifespan=runtime.lifespan(on_start, on_stop=idempotency.flush),
        readiness=runtime.readiness(),
    )
    app.state.runtime = runtime
    app.include_router(build_router(previews, numbering, idempotency, settings.buyer_link_keys()))

    return app


def main() -> None:
    run_service(SERVICE, InvoicingSettings(), build_app)

"""The composition root: wires settings, adapters, handlers and entrypoints into one app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import FastAPI
from juniper_shared.http import create_app, run_service
from juniper_shared.idempotency import IdempotencyKeys
from juniper_shared.runtime import Runtime

from payments.adapters.mongo import PAYMENTS, MongoCardVault, MongoPayments, create_indexes
from payments.adapters.processor import HttpCardProcessor
from payments.adapters.sealing import CardSeal
from payments.application.cards import CardKeeping
from payments.application.handlers import PaymentsHandlers
from payments.application.runner import ChargeRunner, every
from payments.entrypoints.http import build_router
from payments.entrypoints.kafka import register_subscribers
from payments.settings import PaymentsSettings, card_waits

SERVICE = "payments"

log = logging.getLogger(__name__)


def build_app(settings: PaymentsSettings) -> FastAPI:
    runtime = Runtime.create(settings, service=SERVICE, outbox_collections=[PAYMENTS])
    processor = HttpCardProcessor(
        settings.card_processor_url,
        timeout_seconds=settings.payment_request_timeout_seconds,
        retry_attempts=settings.payment_retry_attempts,
        retry_max_seconds=settings.payment_retry_max_seconds,
        backoff_seconds=settings.payment_retry_backoff_seconds,
        backoff_max_seconds=settings.payment_retry_backoff_max_seconds,
        api_key=settings.card_processor_api_key,
    )
    runner = ChargeRunner(concurrency=settings.payment_max_concurrent_charges)
    current_key, previous_keys = settings.card_vault_keys()
    vault = MongoCardVault(runtime.db, CardSeal(current_key, previous_keys))
    handlers = PaymentsHandlers(
        payments=MongoPayments(runtime.db, runtime.relay),
        vault=vault,
        processor=processor,
        scheduler=runner,
        card_waits=card_waits(settings.payment_card_wait_seconds),
    )
    register_subscribers(
        runtime.broker, CardKeeping(vault), handlers, runtime.dead_letters, settings
    )
    lease = timedelta(seconds=settings.payment_pending_lease_seconds)

    async def on_start() -> None:
        await create_indexes(runtime.db)
        if resealed := await vault.reseal():
            log.info("card vault: %d card tokens sealed under the current CARD_VAULT_KEY", resealed)

    async def resume_stale() -> None:
        await handlers.resume_pending(older_than=lease)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime.lifespan(on_start)(app):
            # Whatever a crash left pending is charged again with its stored key, at once.
            await handlers.resume_pending(older_than=timedelta(0), limit=1000)
            scan = asyncio.create_task(
                every(settings.payment_pending_scan_seconds, resume_stale), name="pending-scan"
            )
            try:
                yield
            finally:
                scan.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scan
                await runner.stop(grace_seconds=settings.payment_shutdown_grace_seconds)
                await processor.aclose()

    app = create_app(
        title="JuniperMarket Payments",
        version="1.0.0",
        description="Card charges for issued invoices: attempts, outcomes and the seller's retry.",
        jwt_secret=settings.auth_jwt_secret.get_secret_value(),
        max_token_ttl_seconds=settings.auth_max_token_ttl_seconds,
        lifespan=lifespan,
        readiness=runtime.readiness(),
    )
    app.state.runtime = runtime
    app.state.handlers = handlers
    app.state.runner = runner
    app.include_router(build_router(handlers, IdempotencyKeys(runtime.db["idempotency_keys"])))
    return app


def main() -> None:
    run_service(SERVICE, PaymentsSettings(), build_app)

"""The composition root: wires settings, adapters, handlers and entrypoints into one app."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from juniper_shared.http import create_app, run_service
from juniper_shared.runtime import Runtime

from notifications.adapters.mongo import MongoDeliveryLog, create_indexes
from notifications.adapters.rendering import EmailComposer
from notifications.adapters.smtp import SmtpMailer
from notifications.application.handlers import NotificationHandlers
from notifications.entrypoints.http import build_router
from notifications.entrypoints.kafka import register_subscribers
from notifications.settings import NotificationsSettings

SERVICE = "notifications"


def build_app(settings: NotificationsSettings) -> FastAPI:
    # Notifications publishes nothing, so it has no outbox collections.
    runtime = Runtime.create(settings, service=SERVICE, outbox_collections=[])
    mailer = SmtpMailer(settings)
    handlers = NotificationHandlers(
        deliveries=MongoDeliveryLog(runtime.db),
        mailer=mailer,
        compose=EmailComposer(
            sender=settings.sender(),
            links=settings.buyer_link_keys(),
            link_lifetime=timedelta(days=settings.buyer_link_lifetime_days),
        ),
        concurrency=settings.smtp_concurrency,
    )
    register_subscribers(runtime.broker, handlers, runtime.dead_letters, settings)

    async def on_start() -> None:
        await create_indexes(runtime.db)

    app = create_app(
        title="JuniperMarket Notifications",
        version="1.0.0",
        description="Emails to buyers about their orders and invoices, and their delivery log.",
        jwt_secret=settings.auth_jwt_secret.get_secret_value(),
        max_token_ttl_seconds=settings.auth_max_token_ttl_seconds,
        lifespan=runtime.lifespan(on_start, on_stop=mailer.close),
        readiness=runtime.readiness(),
    )
    app.state.runtime = runtime
    app.state.handlers = handlers
    app.include_router(build_router(handlers))
    return app


def main() -> None:
    run_service(SERVICE, NotificationsSettings(), build_app)

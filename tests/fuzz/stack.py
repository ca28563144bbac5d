"""The four services, the sandbox card processor and an SMTP inbox, run on real HTTP, real Kafka
and FerretDB in a background thread, so that sync tests (schemathesis, hypothesis) and async
tests can both drive them."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from card_sandbox import Sandbox, create_sandbox_app
from invoicing.bootstrap import build_app as build_invoicing
from invoicing.settings import InvoicingSettings
from juniper_ops import kafka_access
from juniper_testkit import free_port, kafka_credentials, kafka_settings, serving
from notifications.bootstrap import build_app as build_notifications
from notifications.settings import NotificationsSettings
from orders.bootstrap import build_app as build_orders
from orders.settings import OrdersSettings
from payments.bootstrap import build_app as build_payments
from payments.settings import PaymentsSettings
from pymongo import MongoClient

JWT_SECRET = "dev-only-secret"
BUYER_LINK_SECRET = "dev-only-buyer-link-secret"
CARD_VAULT_KEY = "ZGV2LW9ubHktY2FyZC12YXVsdC1rZXktMzItYnl0ZXM="
SECRETS: dict[str, Any] = {
    "auth_jwt_secret": JWT_SECRET,
    "buyer_link_secret": BUYER_LINK_SECRET,
    "card_vault_key": CARD_VAULT_KEY,
}
SMTP_USER = "juniper-relay"
SMTP_PASSWORD = "smtp-pw-Qx7-never-logged"
SERVICES = ("orders", "invoicing", "payments", "notifications")


@dataclass(frozen=True)
class Mail:
    rcpt_tos: list[str]
    message: EmailMessage


class SmtpInbox:
    """A real SMTP server (aiosmtpd, own thread) that requires the configured login."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Mail] = []
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password.decode() == SMTP_PASSWORD
        return AuthResult(success=ok)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[arg-type]
        self.received.append(Mail(list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def with_message_id(self, event_id: str) -> list[Mail]:
        wanted = f"<{event_id}@junipermarket.notifications>"
        return [mail for mail in self.received if mail.message["Message-ID"] == wanted]


@dataclass
class Stack:
    """Where each running service answers, and the names its run uses."""

    kafka_bootstrap: str
    mongodb_url: str
    prefixes: dict[str, str]
    databases: dict[str, str]
    urls: dict[str, str] = field(default_factory=dict)
    apps: dict[str, Any] = field(default_factory=dict)
    sandbox_url: str = ""
    inbox: SmtpInbox | None = None

    def topic(self, service: str, name: str) -> str:
        return self.prefixes[service] + name


def _settings(stack: Stack, service: str) -> Any:
    common: dict[str, Any] = {
        "kafka_bootstrap_servers": stack.kafka_bootstrap,
        "mongodb_url": stack.mongodb_url,
        "mongodb_database": stack.databases[service],
        "kafka_topic_prefix": stack.prefixes[service],
        **SECRETS,
        "outbox_poll_seconds": 0.5,
        "mongodb_max_pool_size": 10,
        **kafka_credentials(service),  # each service is its own principal
    }
    if service == "orders":
        return OrdersSettings(**common)
    if service == "invoicing":
        return InvoicingSettings(**common)
    if service == "payments":
        return PaymentsSettings(
            **common,
            card_processor_url=stack.sandbox_url,
            payment_retry_attempts=4,
            payment_retry_max_seconds=10,
            payment_retry_backoff_seconds=0.05,
            payment_retry_backoff_max_seconds=0.5,
            payment_card_wait_seconds=4.0,
        )
    assert stack.inbox is not None
    return NotificationsSettings(
        **common,
        smtp_host="127.0.0.1",
        smtp_port=stack.inbox.port,
        smtp_username=SMTP_USER,
        smtp_password=SMTP_PASSWORD,
        smtp_retry_attempts=2,
        smtp_retry_max_seconds=3,
    )


_BUILDERS: dict[str, Any] = {
    "orders": build_orders,
    "invoicing": build_invoicing,
    "payments": build_payments,
    "notifications": build_notifications,
}


@contextlib.contextmanager
def running_stack(
    infra: Any, *, services: tuple[str, ...] = SERVICES, linked: bool = True
) -> Iterator[Stack]:
    """Start `services` (linked: one topic prefix for all, so events flow between them;
    otherwise each has a prefix of its own, so each consumer is fuzzed alone)."""
    unique = uuid.uuid4().hex[:10]
    stack = Stack(
        kafka_bootstrap=infra.kafka_bootstrap,
        mongodb_url=infra.mongodb_url,
        prefixes={s: f"t{unique}." if linked else f"t{unique}{s[:3]}." for s in services},
        databases={s: f"test_{unique}_{s}" for s in services},
    )
    admin = kafka_access.connect(kafka_settings(infra.kafka_bootstrap, "admin"))
    try:
        for prefix in set(stack.prefixes.values()):
            kafka_access.provision(admin, prefix=prefix)
    finally:
        admin.close()
    inbox = SmtpInbox()
    inbox.start()
    stack.inbox = inbox
    ready = threading.Event()
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            async with contextlib.AsyncExitStack() as running:
                sandbox_app = create_sandbox_app(Sandbox(slow_seconds=5.0))
                stack.sandbox_url = await running.enter_async_context(serving(sandbox_app))
                for service in services:
                    app = _BUILDERS[service](_settings(stack, service))
                    stack.apps[service] = app
                    stack.urls[service] = await running.enter_async_context(serving(app))
                ready.set()
                await stop.wait()
        except BaseException as error:
            failure.append(error)
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        ready.wait(timeout=120)
        if failure:
            raise RuntimeError("the stack did not start") from failure[0]
        if not ready.is_set():
            raise RuntimeError("the stack did not start within 120 s")
        yield stack
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=90)
        loop.close()
        inbox.stop()
        client: MongoClient[dict[str, Any]] = MongoClient(infra.mongodb_url)
        try:
            for database in stack.databases.values():
                client.drop_database(database)
        finally:
            client.close()


def describe_apps(describe: Any) -> dict[str, Any]:
    """`describe(app)` for an app of each service, built (not started) inside an event loop of
    its own: the brokers and clients they create want one, and are dropped with it."""

    async def build() -> dict[str, Any]:
        described = {}
        for service in SERVICES:
            settings = {
                "orders": OrdersSettings,
                "invoicing": InvoicingSettings,
                "payments": PaymentsSettings,
                "notifications": NotificationsSettings,
            }[service](**SECRETS, **kafka_credentials(service))
            described[service] = describe(_BUILDERS[service](settings))
        return described

    return asyncio.run(build())

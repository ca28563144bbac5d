"""The whole system as separate processes, and a seller, a checkout and a buyer's inbox to drive it.

Everything here talks to the services the way their users do: HTTP with a seller's JWT, orders
placed on Kafka as checkout places them, emails read from a real SMTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from juniper_shared.contracts.events import OrderPlaced
from juniper_shared.contracts.registry import ORDERS_PLACED, TOPICS, encode
from juniper_shared.testing import bearer, free_port, placed_order, wait_until

REPO = Path(__file__).resolve().parents[2]
JWT_SECRET = "dev-only-secret"
START_TIMEOUT = 90.0
"""Five Python processes importing FastAPI, FastStream and PyMongo at once on two busy cores."""
STOP_TIMEOUT = 15.0
WAIT = 30.0
"""Bound on every wait for an asynchronous outcome (a Kafka hop, a charge, an email)."""

SHIPPING = {
    "carrier": "UPS",
    "tracking_number": "1Z999AA10123456784",
    "shipped_at": datetime.now(UTC).date().isoformat(),
    "shipping_cost": "15.00",
}


# --- the buyer's inbox ----------------------------------------------------------------------


@dataclass(frozen=True)
class Email:
    to: list[str]
    subject: str
    text: str

    @classmethod
    def parse(cls, rcpt_tos: list[str], content: bytes) -> Email:
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(("plain",))
        text = body.get_content() if body is not None else ""
        return cls(to=rcpt_tos, subject=str(message["Subject"]), text=text.replace("\r\n", "\n"))


class Inbox:
    """A real SMTP server (aiosmtpd) on a free port, in the test process; keeps every email."""

    def __init__(self) -> None:
        self.port = free_port()
        self._received: list[Email] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        with self._lock:
            self._received.append(Email.parse(list(envelope.rcpt_tos), raw))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def to(self, address: str) -> list[Email]:
        with self._lock:
            return [mail for mail in self._received if address in mail.to]

    async def wait_for(self, address: str, subject: str) -> Email:
        """The one email to `address` whose subject contains `subject` (waits for it, bounded)."""

        async def matching() -> int:
            return len([mail for mail in self.to(address) if subject in mail.subject])

        try:
            await wait_until(matching, equals=1, timeout=WAIT, interval=0.2)
        except AssertionError:
            subjects = [mail.subject for mail in self.to(address)]
            raise AssertionError(
                f"no single email to {address} about {subject!r}; it has {subjects}"
            ) from None
        return next(mail for mail in self.to(address) if subject in mail.subject)


# --- the services as processes --------------------------------------------------------------


@dataclass
class Process:
    name: str
    module: str
    port: int
    env: dict[str, str]
    log_path: Path
    ready_path: str = "/readyz"
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", self.module],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def exited(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    async def wait_ready(self, http: httpx.AsyncClient, deadline: float) -> None:
        while True:
            code = self.exited()
            if code is not None:
                raise RuntimeError(f"{self.name} exited with {code} during start-up")
            try:
                response = await http.get(self.url + self.ready_path, timeout=2.0)
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {START_TIMEOUT:.0f} s")
            await asyncio.sleep(0.25)

    def terminate(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def reap(self, deadline: float) -> int | None:
        """Wait for the exit after SIGTERM until `deadline`, then SIGKILL; returns the exit code."""
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)
            return None


@dataclass
class Stack:
    """Orders, invoicing, payments, notifications and the sandbox card processor."""

    kafka_bootstrap: str
    mongodb_url: str
    topic_prefix: str
    inbox: Inbox
    log_dir: Path
    processes: dict[str, Process] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)
    producer: AIOKafkaProducer | None = None
    partitions: int = 3

    @classmethod
    def plan(
        cls,
        *,
        kafka_bootstrap: str,
        mongodb_url: str,
        inbox: Inbox,
        log_dir: Path,
        partitions: int = 3,
    ) -> Stack:
        run = uuid.uuid4().hex[:10]
        stack = cls(kafka_bootstrap, mongodb_url, f"e2e{run}.", inbox, log_dir)
        stack.partitions = partitions
        ports = {name: free_port() for name in ("orders", "invoicing", "payments", "notifications")}
        sandbox_port = free_port()
        base = {
            key: value
            for key, value in os.environ.items()
            # Nothing of the caller's service configuration leaks into the processes.
            if not key.startswith(("KAFKA_", "MONGODB_", "HTTP_", "SMTP_", "CARD_", "OUTBOX_"))
            and key not in ("PUBLIC_BASE_URL", "MAIL_FROM", "AUTH_JWT_SECRET", "LOG_LEVEL")
        }
        for name, port in ports.items():
            database = f"e2e_{run}_{name}"
            stack.databases.append(database)
            env = {
                **base,
                "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "MONGODB_URL": mongodb_url,
                "MONGODB_DATABASE": database,
                # Four services share FerretDB's PostgreSQL pool with everyone else's tests.
                "MONGODB_MAX_POOL_SIZE": "10",
                "KAFKA_TOPIC_PREFIX": stack.topic_prefix,
                "AUTH_JWT_SECRET": JWT_SECRET,
                "OUTBOX_POLL_SECONDS": "0.5",
                "HTTP_PORT": str(port),
            }
            if name == "invoicing":
                env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
            if name == "payments":
                env["CARD_PROCESSOR_URL"] = f"http://127.0.0.1:{sandbox_port}"
            if name == "notifications":
                env |= {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(inbox.port)}
            stack.processes[name] = Process(name, name, port, env, log_dir / f"{name}.log")
        stack.processes["sandbox"] = Process(
            "sandbox",
            "payments.sandbox",
            sandbox_port,
            {**base, "SANDBOX_PORT": str(sandbox_port)},
            log_dir / "sandbox.log",
            ready_path="/healthz",
        )
        return stack

    def url(self, name: str) -> str:
        return self.processes[name].url

    async def start(self) -> None:
        await self._create_topics()
        for process in self.processes.values():
            process.start()
        deadline = time.monotonic() + START_TIMEOUT
        async with httpx.AsyncClient() as http:
            await asyncio.gather(*(p.wait_ready(http, deadline) for p in self.processes.values()))
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.kafka_bootstrap, enable_idempotence=True
        )
        await self.producer.start()

    async def stop(self) -> dict[str, int | None]:
        """SIGTERM to every process, SIGKILL to those still running after a bound; exit codes."""
        if self.producer is not None:
            await self.producer.stop()
        for process in self.processes.values():
            process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        codes = {
            name: await asyncio.to_thread(process.reap, deadline)
            for name, process in self.processes.items()
        }
        await self._clean_up()
        return codes

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, **plan: Any) -> AsyncIterator[Stack]:
        """Started, yielded, stopped; a start-up failure fails the test with every log tail."""
        system = cls.plan(**plan)
        try:
            await system.start()
        except BaseException as error:
            await system.stop()
            pytest.fail(f"the system did not start: {error}\n{system.log_tails()}", pytrace=False)
        try:
            yield system
        finally:
            codes = await system.stop()
            # uvicorn re-raises the SIGTERM it handled once shut down: -15 is a clean stop.
            unclean = {name: code for name, code in codes.items() if code != -signal.SIGTERM}
            if unclean:
                print(f"did not stop cleanly on SIGTERM (exit codes): {unclean}")
                print(system.log_tails())

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(
            f"----- {name} ({process.log_path}) -----\n{process.log_tail(lines)}"
            for name, process in self.processes.items()
        )

    async def place(self, order: OrderPlaced) -> None:
        """Publish a placed order on `orders.placed`, keyed by its id, as checkout does."""
        assert self.producer is not None
        await self.producer.send_and_wait(
            self.topic_prefix + ORDERS_PLACED.name,
            encode(order),
            key=order.key().encode(),
            headers=[("type", order.type.encode())],
        )

    async def charges(self, reference: str) -> list[dict[str, Any]]:
        """What the card processor charged for `reference` (the sandbox's own list)."""
        async with httpx.AsyncClient(base_url=self.url("sandbox"), timeout=10) as http:
            response = await http.get("/v1/charges", params={"reference": reference})
        assert response.status_code == 200, response.text
        charges: list[dict[str, Any]] = response.json()
        return charges

    async def _create_topics(self) -> None:
        # As a deployment does; consumers then join topics that exist, with three partitions.
        admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        self.topic_prefix + topic.name,
                        num_partitions=self.partitions,
                        replication_factor=1,
                    )
                    for topic in TOPICS
                ]
            )
        finally:
            await admin.close()

    async def _clean_up(self) -> None:
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self.mongodb_url, serverSelectionTimeoutMS=5000
        )
        try:
            for database in self.databases:
                await client.drop_database(database)
        finally:
            await client.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka_bootstrap)
        await admin.start()
        try:
            ours = [
                name for name in await admin.list_topics() if name.startswith(self.topic_prefix)
            ]
            if ours:
                await admin.delete_topics(ours)
        finally:
            await admin.close()


# --- people ---------------------------------------------------------------------------------


def new_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Buyer:
    id: str
    name: str
    email: str
    company: str

    @classmethod
    def new(cls, name: str = "Ada Buyer", company: str = "Maple & Co") -> Buyer:
        buyer_id = new_id("buyer")
        return cls(buyer_id, name, f"{buyer_id}@example.com", company)

    def as_contract(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "email": self.email, "company": self.company}


def card(token: str = "tok_visa", last4: str = "4242") -> dict[str, str]:
    return {"type": "credit_card", "card_token": token, "brand": "visa", "last4": last4}


def item(sku: str, unit_price: str, quantity: int, name: str | None = None) -> dict[str, Any]:
    return {"sku": sku, "name": name or sku.title(), "unit_price": unit_price, "quantity": quantity}


class Seller:
    """One seller's portal session: every call is the HTTP request the admin portal makes."""

    def __init__(self, stack: Stack, http: httpx.AsyncClient, seller_id: str | None = None):
        self.stack = stack
        self.http = http
        self.seller_id = seller_id or new_id("seller")
        self.name = "Juniper Pottery"
        self.headers = bearer(self.seller_id, JWT_SECRET)

    # --- checkout (on Kafka) and the order pages ---------------------------------------------

    async def receives_order(
        self,
        buyer: Buyer,
        *,
        items: list[dict[str, Any]] | None = None,
        payment_method: dict[str, Any] | None = None,
        status: str = "pending",
        **extra: Any,
    ) -> dict[str, Any]:
        """A buyer places an order with this seller; waits until the seller sees it."""
        overrides: dict[str, Any] = {
            "seller_id": self.seller_id,
            "seller_name": self.name,
            "buyer": buyer.as_contract(),
            "payment_method": payment_method or card(),
            **extra,
        }
        if items is not None:
            overrides["items"] = items
        order = placed_order(**overrides)
        await self.stack.place(order)
        return await self.order_once(order.data.order_id, status=status)

    async def order_once(self, order_id: str, *, status: str) -> dict[str, Any]:
        """The order's details once it reaches `status` (bounded wait)."""

        async def current() -> str | None:
            response = await self.get("orders", f"/v1/orders/{order_id}")
            return response.json()["status"] if response.status_code == 200 else None

        await wait_until(current, equals=status, timeout=WAIT, interval=0.2)
        return await self.ok("orders", "GET", f"/v1/orders/{order_id}")

    async def row(self, order_id: str) -> dict[str, Any]:
        """The order's row on the All Orders table."""
        listing = await self.ok("orders", "GET", "/v1/orders", params={"page_size": 100})
        rows = [row for row in listing["items"] if row["order_id"] == order_id]
        assert len(rows) == 1, f"{order_id} is on the All Orders table {len(rows)} times"
        row: dict[str, Any] = rows[0]
        return row

    async def row_once(self, order_id: str, **expected: Any) -> dict[str, Any]:
        """The All Orders row once its fields show `expected` (bounded wait)."""

        async def shown() -> dict[str, Any]:
            row = await self.row(order_id)
            return {key: row[key] for key in expected}

        await wait_until(shown, equals=expected, timeout=WAIT, interval=0.2)
        return await self.row(order_id)

    # --- the buttons ------------------------------------------------------------------------

    async def accept(self, order_id: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.post("orders", f"/v1/orders/{order_id}/accept", body)

    async def reject(self, order_id: str, reason: str, message: str) -> httpx.Response:
        body = {"reason": reason, "message": message}
        return await self.post("orders", f"/v1/orders/{order_id}/reject", body)

    async def split(self, order_id: str, line_ids: list[str]) -> httpx.Response:
        return await self.post("orders", f"/v1/orders/{order_id}/split", {"line_ids": line_ids})

    async def change_quantities(
        self, order_id: str, quantities: Mapping[str, int]
    ) -> httpx.Response:
        body = {"items": [{"line_id": line, "quantity": qty} for line, qty in quantities.items()]}
        return await self.http.patch(
            self.stack.url("orders") + f"/v1/orders/{order_id}/items",
            json=body,
            headers=self.headers,
        )

    async def remove_items(self, order_id: str, line_ids: list[str]) -> httpx.Response:
        return await self.post(
            "orders", f"/v1/orders/{order_id}/items/remove", {"line_ids": line_ids}
        )

    async def cancel(self, order_id: str, message: str) -> httpx.Response:
        return await self.post("orders", f"/v1/orders/{order_id}/cancel", {"message": message})

    async def set_gated(self, gated: bool) -> None:
        response = await self.http.put(
            self.stack.url("orders") + "/v1/seller/settings",
            json={"buyer_access_requires_approval": gated},
            headers=self.headers,
        )
        assert response.status_code == 200, response.text

    async def create_customer(
        self, name: str, email_address: str, buyer_ids: list[str] | None = None
    ) -> dict[str, Any]:
        body = {"name": name, "email": email_address, "buyer_ids": buyer_ids or []}
        response = await self.post("orders", "/v1/customers", body)
        assert response.status_code == 201, response.text
        customer: dict[str, Any] = response.json()
        return customer

    async def knows(self, buyer: Buyer) -> dict[str, Any]:
        """The buyer already has a relationship with the seller (a customer linked to them)."""
        return await self.create_customer(buyer.company, buyer.email, [buyer.id])

    # --- invoicing and payments ---------------------------------------------------------------

    async def preview(
        self, order_id: str, shipping: Mapping[str, str] = SHIPPING
    ) -> dict[str, Any]:
        """Create Invoice on the shipping tab: the draft, once invoicing has the approved order.

        Invoicing learns of the approval from `orders.events`, so a preview sent in the same
        instant may still find the order unknown or pending; the seller would press again.
        """
        last: list[httpx.Response] = []

        async def drafted() -> int:
            response = await self.post(
                "invoicing", f"/v1/orders/{order_id}/invoice/preview", {"shipping": dict(shipping)}
            )
            last[:] = [response]
            return response.status_code

        try:
            await wait_until(drafted, equals=200, timeout=WAIT, interval=0.3)
        except AssertionError:
            raise AssertionError(f"no invoice preview for {order_id}: {last[0].text}") from None
        draft: dict[str, Any] = last[0].json()
        return draft

    async def confirm(self, invoice_id: str) -> dict[str, Any]:
        response = await self.post("invoicing", f"/v1/invoices/{invoice_id}/confirm")
        assert response.status_code == 200, response.text
        confirmed: dict[str, Any] = response.json()
        return confirmed

    async def invoice_once(self, invoice_id: str, status: str) -> dict[str, Any]:
        async def current() -> str:
            return str((await self.ok("invoicing", "GET", f"/v1/invoices/{invoice_id}"))["status"])

        await wait_until(current, equals=status, timeout=WAIT, interval=0.2)
        return await self.ok("invoicing", "GET", f"/v1/invoices/{invoice_id}")

    async def payment(self, invoice_id: str) -> dict[str, Any]:
        return await self.ok("payments", "GET", "/v1/payments", params={"invoice_id": invoice_id})

    async def retry_payment(self, invoice_id: str) -> httpx.Response:
        return await self.post("payments", f"/v1/invoices/{invoice_id}/payment/retry")

    async def invoice_and_confirm(self, order_id: str) -> dict[str, Any]:
        draft = await self.preview(order_id)
        return await self.confirm(draft["invoice_id"])

    # --- plumbing ---------------------------------------------------------------------------

    async def get(self, service: str, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(
            self.stack.url(service) + path, params=params or None, headers=self.headers
        )

    async def post(
        self, service: str, path: str, body: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        return await self.http.post(
            self.stack.url(service) + path,
            json=dict(body) if body is not None else None,
            headers=self.headers,
        )

    async def ok(
        self, service: str, method: str, path: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self.http.request(
            method, self.stack.url(service) + path, params=params, headers=self.headers
        )
        assert response.status_code == 200, f"{method} {path}: {response.text}"
        body: dict[str, Any] = response.json()
        return body


def error_code(response: httpx.Response) -> tuple[int, str]:
    """A contract error as the portal reads it: status and `error.code`."""
    return response.status_code, response.json()["error"]["code"]

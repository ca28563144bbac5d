"""The whole system as separate real processes: the four services, the sandbox card processor,
an SMTP inbox, a private Kafka broker when a test must restart one.

Shared by the end-to-end stories (tests/e2e), the fault-injection suite (tests/faults) and the
full-chain benchmark (bench/chain_bench.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.header
import email.parser
import email.policy
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from juniper_ops import kafka_access
from juniper_shared.contracts.events import OrderPlaced
from juniper_shared.contracts.registry import ORDERS_PLACED, encode
from juniper_testkit import free_port, kafka_env, kafka_options, kafka_settings, wait_until

REPO = Path(__file__).resolve().parents[2]
JWT_SECRET = "dev-only-secret"
BUYER_LINK_SECRET = "dev-only-buyer-link-secret"
CARD_VAULT_KEY = "ZGV2LW9ubHktY2FyZC12YXVsdC1rZXktMzItYnl0ZXM="
START_TIMEOUT = 90.0
"""Five Python processes importing FastAPI, FastStream and PyMongo at once on two busy cores."""
STOP_TIMEOUT = 15.0
WAIT = 30.0
"""Bound on every wait for an asynchronous outcome (a Kafka hop, a charge, an email)."""
SERVICES = ("orders", "invoicing", "payments", "notifications")


# --- the buyer's inbox ----------------------------------------------------------------------


@dataclass(frozen=True)
class Email:
    to: list[str]
    subject: str
    text: str
    message_id: str = ""
    received_at: float = 0.0
    """Wall-clock time (time.time()) the inbox received it."""

    @classmethod
    def parse(cls, rcpt_tos: list[str], content: bytes) -> Email:
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(("plain",))
        text = body.get_content() if body is not None else ""
        return cls(
            to=rcpt_tos,
            subject=str(message["Subject"]),
            text=text.replace("\r\n", "\n"),
            message_id=str(message["Message-ID"] or ""),
            received_at=time.time(),
        )

    @classmethod
    def parse_headers(cls, rcpt_tos: list[str], content: bytes) -> Email:
        """Subject and Message-ID only (no body): for a load generator, which reads thousands."""
        headers = email.parser.BytesHeaderParser().parsebytes(content)
        subject = str(email.header.make_header(email.header.decode_header(headers["Subject"])))
        return cls(
            to=rcpt_tos,
            subject=subject,
            text="",
            message_id=str(headers["Message-ID"] or ""),
            received_at=time.time(),
        )


class Inbox:
    """A real SMTP server (aiosmtpd) on a free port, in the test process; keeps every email."""

    def __init__(
        self, on_email: Callable[[Email], None] | None = None, *, headers_only: bool = False
    ) -> None:
        self.port = free_port()
        self._received: list[Email] = []
        self._lock = threading.Lock()
        self._on_email = on_email
        """Called in the SMTP server's thread for every email received."""
        self._parse = Email.parse_headers if headers_only else Email.parse
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        mail = self._parse(list(envelope.rcpt_tos), raw)
        with self._lock:
            self._received.append(mail)
        if self._on_email is not None:
            self._on_email(mail)
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Inbox:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def all(self) -> list[Email]:
        with self._lock:
            return list(self._received)

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
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", self.module],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer does: no shutdown code runs."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)

    async def restart(self, http: httpx.AsyncClient, timeout: float = START_TIMEOUT) -> float:
        """Start again (after a kill) and wait until ready; returns the seconds it took."""
        started = time.monotonic()
        self.start()
        await self.wait_ready(http, started + timeout)
        return time.monotonic() - started

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
        label: str = "e2e",
        extra_env: dict[str, str] | None = None,
    ) -> Stack:
        """`label` starts topic prefixes and database names; `extra_env` adds to each service's."""
        run = uuid.uuid4().hex[:10]
        stack = cls(kafka_bootstrap, mongodb_url, f"{label}{run}.", inbox, log_dir)
        stack.partitions = partitions
        ports = {name: free_port() for name in SERVICES}
        sandbox_port = free_port()
        base = {
            key: value
            for key, value in os.environ.items()
            # Nothing of the caller's service configuration leaks into the processes.
            if not key.startswith(
                ("KAFKA_", "MONGODB_", "HTTP_", "SMTP_", "CARD_", "OUTBOX_", "BUYER_LINK_")
            )
            and key not in ("PUBLIC_BASE_URL", "MAIL_FROM", "AUTH_JWT_SECRET", "LOG_LEVEL")
        }
        for name, port in ports.items():
            database = f"{label}_{run}_{name}"
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
                "BUYER_LINK_SECRET": BUYER_LINK_SECRET,
                "CARD_VAULT_KEY": CARD_VAULT_KEY,
                "OUTBOX_POLL_SECONDS": "0.5",
                "HTTP_PORT": str(port),
                **kafka_env(name),  # each service is its own principal
                **(extra_env or {}),
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
            "card_sandbox",
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
        # Places orders as the platform's checkout does.
        self.producer = AIOKafkaProducer(
            **kafka_options(self.kafka_bootstrap, "checkout"), enable_idempotence=True
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
            # uvicorn re-raises the SIGTERM it handled once shut down: -15 (or 0) is a clean stop.
            unclean = {
                name: code for name, code in codes.items() if code not in (0, -signal.SIGTERM)
            }
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
        # As a deployment does: the super user creates the topics (consumers then join topics
        # that exist, with three partitions) and grants each principal its ACLs on them.
        await asyncio.to_thread(self._provision)

    def _provision(self) -> None:
        with contextlib.closing(self._kafka_admin()) as admin:
            kafka_access.provision(admin, prefix=self.topic_prefix, partitions=self.partitions)

    def _revoke(self) -> None:
        with contextlib.closing(self._kafka_admin()) as admin:
            kafka_access.revoke(admin, prefix=self.topic_prefix)

    def _kafka_admin(self) -> Any:
        return kafka_access.connect(kafka_settings(self.kafka_bootstrap, "admin"))

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
        await asyncio.to_thread(self._revoke)
        admin = AIOKafkaAdminClient(**kafka_options(self.kafka_bootstrap, "admin"))
        await admin.start()
        try:
            ours = [
                name for name in await admin.list_topics() if name.startswith(self.topic_prefix)
            ]
            if ours:
                await admin.delete_topics(ours)
        finally:
            await admin.close()


# --- a Kafka broker of one's own ------------------------------------------------------------


@dataclass
class PrivateKafka:
    """A Kafka broker of the test's own (deploy/local/infra.sh with its own state dir and ports),
    for tests that stop and restart the broker: the shared one on 9092 serves other runs."""

    state_dir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _infra(self, *args: str) -> None:
        env = {
            **os.environ,
            "JM_STATE_DIR": str(self.state_dir),
            "JM_KAFKA_PORT": str(self.port),
            "JM_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            # A JVM start takes over a minute on two cores busy with everyone's tests.
            "JM_WAIT_SECONDS": "180",
        }
        result = subprocess.run(
            ["bash", str(REPO / "deploy/local/infra.sh"), *args, "kafka"],
            env=env,
            capture_output=True,
            text=True,
            timeout=420,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"infra.sh {' '.join(args)} kafka failed: {result.stderr.strip()}")

    async def up(self) -> None:
        await asyncio.to_thread(self._infra, "up")

    async def down(self) -> None:
        await asyncio.to_thread(self._infra, "down")

    async def restart(self) -> float:
        """Stop (SIGTERM, as infra.sh does) and start again on the same data; seconds taken."""
        started = time.monotonic()
        await self.down()
        await self.up()
        return time.monotonic() - started

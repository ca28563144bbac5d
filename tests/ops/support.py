"""Real service processes for the operations tests: start, wait ready, signal, read metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from juniper_testkit import free_port, kafka_env

JWT_SECRET = "dev-only-secret"
REPO = Path(__file__).resolve().parents[2]


def service_env(
    *,
    kafka: str,
    mongodb_url: str,
    database: str,
    prefix: str,
    port: int,
    principal: str,
    **extra: str,
) -> dict[str, str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "MONGODB_URL": mongodb_url,
        "MONGODB_DATABASE": database,
        "KAFKA_TOPIC_PREFIX": prefix,
        "AUTH_JWT_SECRET": JWT_SECRET,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "OUTBOX_POLL_SECONDS": "0.5",
        "LOG_LEVEL": "INFO",
        **kafka_env(principal),
    }
    env.update(extra)
    return env


@dataclass
class ServiceProcess:
    """`python -m <package>` as its own OS process, as Kubernetes runs it."""

    package: str
    env: dict[str, str]
    log_path: Path
    port: int
    process: asyncio.subprocess.Process | None = field(default=None, init=False)

    @classmethod
    def orders(
        cls, tmp_path: Path, name: str, *, kafka: str, mongodb_url: str, database: str, prefix: str
    ) -> ServiceProcess:
        port = free_port()
        env = service_env(
            kafka=kafka,
            mongodb_url=mongodb_url,
            database=database,
            prefix=prefix,
            port=port,
            principal="orders",
            # Small batches: a signal lands while batches are in flight, not between two big ones.
            CONSUMER_BATCH_SIZE="50",
        )
        return cls("orders", env, tmp_path / f"{name}.log", port)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *, ready_within: float = 90.0) -> None:
        log = await asyncio.to_thread(self.log_path.open, "ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.package,
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            log.close()
        await self.wait_ready(within=ready_within)

    async def wait_ready(self, *, within: float) -> None:
        assert self.process is not None
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as client:
            try:
                async with asyncio.timeout(within):
                    while True:
                        if self.process.returncode is not None:
                            raise AssertionError(
                                f"{self.package} exited {self.process.returncode} during start\n"
                                + self.log_tail()
                            )
                        try:
                            if (await client.get("/readyz")).status_code == 200:
                                return
                        except httpx.TransportError:
                            pass
                        await asyncio.sleep(0.2)
            except TimeoutError:
                raise AssertionError(
                    f"{self.package} not ready within {within}s\n{self.log_tail()}"
                ) from None

    async def terminate(self, *, within: float) -> int:
        """SIGTERM, as Kubernetes sends it; the exit status once the process has gone."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout=within)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(
                f"{self.package} still ran {within}s after SIGTERM\n{self.log_tail()}"
            ) from None

    async def kill(self) -> None:
        """SIGKILL: the node died, the OOM killer struck."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def stop_quietly(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def consumed(self, topic: str) -> float:
        """Messages of `topic` this process has handled, from its /metrics."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as client:
            text = (await client.get("/metrics")).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("jm_messages_consumed_total{") and f'topic="{topic}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

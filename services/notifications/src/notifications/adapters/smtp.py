"""Sending over SMTP with aiosmtplib: connections reused across batches, transient faults retried."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from email.message import Message

import aiosmtplib
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from notifications.adapters.rendering import WIRE_POLICY
from notifications.domain.delivery import Outcome, SendResult, is_transient_reply
from notifications.metrics import SMTP_RETRIES
from notifications.settings import NotificationsSettings

IDLE_SECONDS = 30.0
"""A connection idle this long is closed instead of reused: well inside mail servers' own idle
timeouts (Postfix: 300 s), so a reused connection is one the server still holds open."""


def is_transient(error: BaseException) -> bool:
    """Worth trying again: the server is unreachable, slow, or answered 4xx ("try later").

    A refused login is treated as transient too: it is the relay's configuration, not the
    email, that is wrong, so the email waits (pending) until an operator fixes it.
    """
    if isinstance(error, aiosmtplib.SMTPAuthenticationError | aiosmtplib.SMTPConnectError):
        return True
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return any(is_transient_reply(refused.code) for refused in error.recipients)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return is_transient_reply(error.code)
    return isinstance(error, ConnectionError | TimeoutError | OSError)


def is_permanent(error: BaseException) -> bool:
    """Refused for good (5xx reply, unsupported message): retrying cannot help."""
    return isinstance(error, aiosmtplib.SMTPException) and not is_transient(error)


def describe(error: BaseException) -> str:
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{refused.recipient}: {refused.code} {refused.message}" for refused in error.recipients
        )[:500]
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"{error.code} {error.message}"[:500]
    return f"{type(error).__name__}: {error}"[:500]


class SmtpMailer:
    def __init__(self, settings: NotificationsSettings) -> None:
        self._settings = settings
        self._idle: list[tuple[SmtpSession, float]] = []
        """Connections between batches, the most recently used last, with when they were."""

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[SmtpSession]:
        """A connection for one worker of a batch: an idle one if there is one (connecting,
        EHLO and QUIT per batch cost more than the emails of a small batch), else a new one."""
        session = await self._checkout()
        try:
            yield session
        except BaseException:
            await session.close()
            raise
        if session.connected and len(self._idle) < self._settings.smtp_concurrency:
            self._idle.append((session, time.monotonic()))
        else:
            await session.close()

    async def _checkout(self) -> SmtpSession:
        now = time.monotonic()
        while self._idle:
            session, since = self._idle.pop()
            if now - since < IDLE_SECONDS and session.connected:
                return session
            await session.close()
        return SmtpSession(self._settings)

    async def close(self) -> None:
        """Say goodbye on the idle connections (on shutdown)."""
        idle, self._idle = self._idle, []
        for session, _ in idle:
            await session.close()


class SmtpSession:
    """One SMTP connection, opened on the first send and again after a connection fault."""

    def __init__(self, settings: NotificationsSettings) -> None:
        self._settings = settings
        self._sender = settings.sender().addr_spec
        self._client: aiosmtplib.SMTP | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    async def send(self, message: Message, *, recipient: str) -> SendResult:
        settings = self._settings
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.smtp_retry_attempts)
            | stop_before_delay(settings.smtp_retry_max_seconds),
            wait=wait_exponential_jitter(
                multiplier=0.2, max=max(settings.smtp_retry_max_seconds / 4, 0.2), jitter=0.2
            ),
            retry=retry_if_exception(is_transient),
            before_sleep=_count_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    await self._send_once(message, recipient)
        except Exception as error:
            if is_transient(error):
                return SendResult(Outcome.DEFERRED, attempts, describe(error))
            if is_permanent(error):
                return SendResult(Outcome.FAILED, attempts, describe(error))
            raise
        return SendResult(Outcome.SENT, attempts)

    async def _send_once(self, message: Message, recipient: str) -> None:
        try:
            client = await self._connected()
            # The envelope names the recipient explicitly: headers never decide where mail goes.
            await client.sendmail(self._sender, [recipient], message.as_bytes(policy=WIRE_POLICY))
        except Exception as error:
            if is_transient(error):
                await self.close()
            raise

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        settings = self._settings
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        client = aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username or None,
            password=password,
            use_tls=settings.smtp_tls,
            start_tls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_seconds,
        )
        await client.connect()
        self._client = client
        return client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None or not client.is_connected:
            return
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()


def _count_retry(_: RetryCallState) -> None:
    SMTP_RETRIES.inc()
